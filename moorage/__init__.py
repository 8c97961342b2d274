"""Moorage: a self-hosted, Heroku-style platform with an Open Service Broker at its heart."""

__version__ = "0.1.0"
