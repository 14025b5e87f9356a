"""Shopify platform plugin for the Alana Integration Gateway."""

__version__ = "0.1.0"
