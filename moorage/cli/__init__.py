"""The ``moorage`` command: talks to the controller API over HTTP only."""
