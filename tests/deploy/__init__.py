"""The deployment files (deploy/, .dockerignore) checked by the tools that read them.

Each check runs the real tool where one installs from the registries: hadolint and Docker
Compose from PyPI (dev dependencies), promtool from Debian's prometheus package (installed by
``./scripts/test``), systemd-analyze from systemd. Each check is also shown failing on a broken
copy. A missing tool skips its tests, and fails them under CI=true.
"""
