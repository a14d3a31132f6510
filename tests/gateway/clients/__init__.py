"""Scripts run by tests/gateway/test_other_clients.py under .venv-clients/bin/python."""
