"""Govern: identity and tokens, access rules, audit. Called from every layer; calls none above it."""
