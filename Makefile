# The two commands of the README. Each sets up .venv itself when needed.
.PHONY: quickstart test

VENV_STAMP := .venv/.hfsynth-setup
TEST_STAMP := .venv/.hfsynth-setup-test

$(VENV_STAMP): pyproject.toml scripts/setup.sh
	scripts/setup.sh
	touch $@

$(TEST_STAMP): pyproject.toml scripts/setup.sh
	scripts/setup.sh --test
	touch $@ $(VENV_STAMP)

# The main job on the embedded default: the quickstart recipe, offline, end to end.
quickstart: $(VENV_STAMP)
	HF_HUB_OFFLINE=1 .venv/bin/hfsynth run recipes/quickstart.yaml --out runs/quickstart

test: $(TEST_STAMP)
	.venv/bin/python -m pytest $(PYTEST_ARGS)
