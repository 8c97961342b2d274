"""Moorage's state: typed SQLAlchemy models, sessions, migrations and the secret Encryptor."""
