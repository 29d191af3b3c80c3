"""Nynorsk and dialect spellings of word pieces whose bokmål form the platform uses.

The platform is written in bokmål; residents write «symjebasseng», «austsida», «heimetenesta».
This is a spelling table, not a word list per question: each pair rewrites a piece of a word
(stem or compound part) from its nynorsk form to the bokmål one. `TermIndex.correct` tries it only
for a word the platform does not use, and keeps the rewrite only when the platform uses the result.
"""

from __future__ import annotations

#: (nynorsk piece, bokmål piece), longest first where one begins another («heime» before «heim»).
NYNORSK_TO_BOKMAL: tuple[tuple[str, str], ...] = (
    ("symje", "svømme"),
    ("symj", "svømm"),
    ("aust", "øst"),
    ("heime", "hjemme"),
    ("heim", "hjem"),
    ("skule", "skole"),
    ("skul", "skol"),
    ("tenest", "tjenest"),
    ("sjuk", "syk"),
    ("kyrkje", "kirke"),
    ("tryggleik", "trygghet"),
    ("verksemd", "virksomhet"),
    ("bustad", "bolig"),
    ("tilbod", "tilbud"),
    ("fleire", "flere"),
    ("høg", "høy"),
    ("straum", "strøm"),
    ("draum", "drøm"),
    ("laus", "løs"),
    ("auk", "øk"),
    ("vatn", "vann"),
    ("sjølv", "selv"),
    ("golv", "gulv"),
    ("mjølk", "melk"),
    ("innvandrar", "innvandrer"),
    ("lærar", "lærer"),
    ("busett", "bosett"),
)


def bokmal_spelling(term: str) -> str:
    """`term` with every nynorsk piece of the table rewritten to bokmål («symjebasseng» →
    «svømmebasseng», «austsid» → «østsid»); unchanged when it has none."""
    out = term
    for nynorsk, bokmal in NYNORSK_TO_BOKMAL:
        if nynorsk in out:
            out = out.replace(nynorsk, bokmal)
    return out
