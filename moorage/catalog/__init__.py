"""Offerings and plans as data: loading, validation, parameters, and the Provider interface."""
