"""The controller's domain logic, kept away from Flask.

Why apart from the API: the HTTP layer (``moorage.platform.api``) only parses requests
and renders answers; everything a user can do (create an app, change config, deploy,
roll back, scale) lives here as plain functions on a :class:`Platform`, so the same
rules hold whoever calls them and the logic is testable without HTTP.
"""

from moorage.platform.controller.context import Platform, Principal

__all__ = ["Platform", "Principal"]
