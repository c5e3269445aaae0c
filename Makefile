# The two commands for a fresh machine: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint messages clean

$(BIN)/digitbot: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The main job: the bot when TELEGRAM_BOT_TOKEN is set (env or .env), else the offline sandbox.
run: $(BIN)/digitbot
	$(BIN)/digitbot start

test: $(BIN)/digitbot
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(BIN)/digitbot
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# After adding or changing a text in bot/replies.py or bot/admin_replies.py: extract the texts
# and merge them into every catalog (bot/locale/<language>/LC_MESSAGES/digitbot.po), then
# translate the new entries (tests/bot/test_i18n.py fails until each catalog has them).
messages: $(BIN)/digitbot
	$(BIN)/pybabel extract --project digitbot --no-wrap --no-location --sort-output -o bot/locale/digitbot.pot bot
	$(BIN)/pybabel update --no-wrap --no-fuzzy-matching -D digitbot -i bot/locale/digitbot.pot -d bot/locale

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
