"""The builder: Heroku-API buildpacks turn an app's source into a slug and process types.

Why a package: the controller calls one function (``Builder.__call__``, its swappable
build step); behind it are the buildpack API (``runner``), the choice of buildpacks
(``buildpacks``), the build's processes (``processes``), making slugs
(``slugs``; their store is ``moorage.platform.slug_store``), per-app caches (``cache``), the machine's Python interpreters
(``python_versions``), the shared tool cache (``tools``) and what a failed compile said
(``failures``). The built-in buildpacks themselves live in the top-level
``buildpacks/`` folder and run without Moorage too.
"""

from moorage.platform.builder.pipeline import Builder, BuildResult, inherited_environment
from moorage.platform.builder.processes import BuildFailed, BuildTimeout, Limits

__all__ = [
    "Builder",
    "BuildResult",
    "BuildFailed",
    "BuildTimeout",
    "Limits",
    "inherited_environment",
]
