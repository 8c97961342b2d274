"""Fixtures shared by every test folder.

Each area keeps its fixtures in ``tests/fixtures/<area>.py``; they are plugins loaded
here, so a session-scoped server (PostgreSQL, Redis, the AWS emulator) starts once per
test run and every folder can use it.
"""

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.mysql",
    "tests.fixtures.broker",
    "tests.fixtures.aws",
    "tests.fixtures.gcp",
    "tests.fixtures.platform",
    "tests.fixtures.router",
    "tests.fixtures.builder",
    "tests.fixtures.kubernetes",
    "tests.fixtures.kube_node",
    "tests.fixtures.kube_volumes",
]
