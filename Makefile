# make test                      the whole test suite (scripts/test.sh; ARGS go to pytest)
# make fuzz SEED=1 COUNT=1000    the full hostile-image suite: COUNT mutants per guest
#                                from SEED, MINUTES to time-box it, RUNAS_EVERY=N to run
#                                every Nth mutant with --runas (root)
# make fuzz-atheris TARGET=ext4  coverage-guided fuzzing of one parser (pip install '.[fuzz]')
# make fuzz-long [MINUTES_PER_TARGET=5] [TARGETS=ext4,fat16]
#                                every parser in turn, niced, its corpus grown and merged in
#                                fuzz/corpus/TARGET (replayed in CI), a line per target in
#                                fuzz/long.log, crashes in SAVE
# make deb [DEB_DIR=dist]         the Debian package, dist/pygrub_VERSION_all.deb (dpkg-deb)
# make mutation [ONLY=gpt,ext4]  mutation testing (pip install '.[mutation]'): mutmut over
#                                the modules [tool.mutmut] names, one at a time, niced, then
#                                killed/survived/timeouts per module; hours on 2 cores, so
#                                outside CI (tests/mutation-survivors.md: the survivors)
# make field                     every installed Debian guest (scripts/build-guest.py) booted
#                                through pygrub and QEMU; CI boots two of them (root); and
#                                both CI guests under real Xen 4.17 and 4.20 by xl create,
#                                with Xen's own pygrub as the reference

PYTHON ?= python3
SEED ?= 1
COUNT ?= 1000
MINUTES ?= 0
JOBS ?= $(shell nproc)
RUNAS_EVERY ?= 0
SAVE ?= fuzz-failures
TARGET ?= ext4
SECONDS ?= 300
DEB_DIR ?= dist
VENV ?= .venv

ONLY ?=
MINUTES_PER_TARGET ?= 5
TARGETS ?=

.PHONY: test fuzz fuzz-atheris fuzz-long deb field mutation

test:
	bash scripts/test.sh $(ARGS)

fuzz:
	$(PYTHON) scripts/fuzz.py --seed $(SEED) --count $(COUNT) --minutes $(MINUTES) \
		--jobs $(JOBS) --runas-every $(RUNAS_EVERY) --save $(SAVE)

fuzz-atheris:
	$(PYTHON) fuzz/atheris_parsers.py $(TARGET) -max_total_time=$(SECONDS) \
		-artifact_prefix=$(SAVE)/ fuzz/corpus/$(TARGET)

fuzz-long:
	nice -n 19 $(PYTHON) fuzz/long.py --minutes $(MINUTES_PER_TARGET) --targets "$(TARGETS)" \
		--save $(SAVE)

deb:
	bash scripts/build-deb.sh $(DEB_DIR)

field:
	PYGRUB_FIELD=1 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_installed_guests.py \
		tests/test_xen_field.py

mutation:
	nice -n 10 $(VENV)/bin/python scripts/mutation.py --jobs $(JOBS) $(if $(ONLY),--only $(ONLY))
