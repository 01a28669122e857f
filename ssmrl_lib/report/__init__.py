"""Turning finished runs into tables, figures and provenance for the book."""
