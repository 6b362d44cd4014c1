"""Registered people and companies, and how a chat account is tied to them (one-time link codes)."""
