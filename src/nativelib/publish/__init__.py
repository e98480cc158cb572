"""Publishing distributions: :mod:`.index` writes a static simple repository (PEP 503
HTML, PEP 691 JSON, PEP 658/714 metadata files, PEP 592 yanking) for a directory of
wheels and sdists, for any web server (or ``file://``) to serve."""
