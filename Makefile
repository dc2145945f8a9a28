# Two commands a user needs: `make run` and `make test` (see README.md).
.PHONY: run test lint bench
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
lint:
	bash scripts/test.sh --lint-only
bench:
	bash scripts/bootstrap.sh dev && .venv/bin/python bench/full_sync.py && .venv/bin/python bench/streaming.py
