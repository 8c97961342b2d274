"""One module per topic of the ``moorage`` command; each exports ``commands``."""
