# The two commands of the quick start:
#   make evolve   a short evolution with the CPU-friendly config (configs/quick.json)
#   make test     bootstrap libtorch if needed, build, run the test suite
# libtorch 2.11.0 comes from the PyPI torch wheel, kept once per user in a cache
# and linked here as .venv and .libtorch (see .cargo/config.toml).
TORCH_VENV ?= $(HOME)/.cache/evolve/torch-2.11.0
# Data root holding cifar10/ and mnist/; ../shared/datasets when it exists.
EVOLVE_DATA_DIR ?= $(abspath $(firstword $(wildcard ../shared/datasets) data))
export EVOLVE_DATA_DIR
GENERATIONS ?= 5

# Independent optimizer implementations the PyTorch export is tested against, pinned, in the same venv.
TEST_PACKAGES = lion-pytorch==0.2.5 pytorch-optimizer==4.1.0 numpy==2.4.6

.PHONY: evolve test build bootstrap bench test-packages

evolve: build
	target/release/evolve --generations $(GENERATIONS) --config configs/quick.json

test: bootstrap test-packages
	cargo test

test-packages: bootstrap
	@.venv/bin/python -c 'import importlib.metadata as m; assert (m.version("lion-pytorch"), m.version("pytorch-optimizer"), m.version("numpy")) == ("0.2.5", "4.1.0", "2.4.6")' 2>/dev/null || \
	  .venv/bin/pip install --quiet $(TEST_PACKAGES)

build: bootstrap
	cargo build --release

bench: build
	cargo bench

bootstrap: .libtorch

.libtorch:
	@$(TORCH_VENV)/bin/python -c 'import torch; assert torch.__version__.startswith("2.11.0")' 2>/dev/null || \
	  { echo "installing torch==2.11.0 into $(TORCH_VENV) (once per user, about 4.6 GB)"; \
	    python3 -m venv $(TORCH_VENV) && $(TORCH_VENV)/bin/pip install --quiet torch==2.11.0; }
	ln -sfn $(TORCH_VENV) .venv
	ln -sfn "$$(.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))')" .libtorch
