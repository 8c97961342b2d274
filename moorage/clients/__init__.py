"""Clients of cloud APIs (AWS, Google Cloud, Kubernetes).

Why a package of its own: these are the only modules that import the cloud SDKs. Each
translates its SDK's exceptions into :mod:`moorage.errors`, so providers, the broker and
the operation engine never see a botocore or google.api_core exception, and an offering
that does not use a cloud never pays for importing its SDK.
"""
