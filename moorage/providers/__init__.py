"""One module per backend (PostgreSQL, Redis, AWS, …), each implementing ``moorage.catalog.provider.Provider``.

Why one module each: the registry (``moorage.catalog.registry``) imports a provider only
when an offering uses it, so a broker offering PostgreSQL never loads boto3.
"""
