"""Leangen-assistenten: grounded answers from Leangen-erklæringen."""
