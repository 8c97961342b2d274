"""``git push`` deploys: bare repositories served over git's smart HTTP protocol.

Why a package: serving a push takes three cooperating parts. ``repos`` keeps one bare
repository per app under ``<data_dir>/git/<app>.git`` with our ``pre-receive`` hook;
``http_backend`` runs ``git http-backend`` as a CGI program, streaming request and
response bodies; ``channel`` is the private Unix socket through which the hook (``hook``,
a stdlib-only program run by ``git receive-pack``) hands the pushed refs to the
controller and relays the build and deploy output back to ``git`` as ``remote:`` lines.
The policy (which refs deploy, checking out the commit) lives in
``moorage.platform.controller.pushes``.
"""
