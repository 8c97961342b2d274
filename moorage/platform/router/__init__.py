"""The router: host name → app → healthy web processes, served by Moorage's own nginx."""

from moorage.platform.router.config import Route
from moorage.platform.router.nginx import Router

__all__ = ["Route", "Router"]
