"""Moroccan language toolkit: normalisation, tokens, transliteration, language identification."""
