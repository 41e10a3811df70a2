#!/bin/bash
# Verifier entry point: runs offline inside the task sandbox; restarts nginx from the agent's configuration.
mkdir -p /logs/verifier
nginx -s quit >/dev/null 2>&1
pkill -x nginx >/dev/null 2>&1
sleep 0.5
if nginx -t >/dev/null 2>&1; then nginx; fi
cd /tests
python3 -m pytest -q -p no:cacheprovider --junitxml=/logs/verifier/junit.xml /tests/test_outputs.py -rA
if [ $? -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
