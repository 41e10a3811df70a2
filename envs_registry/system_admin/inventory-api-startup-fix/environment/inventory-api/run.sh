#!/bin/bash
# Launcher for the inventory API. Usage: run.sh   (runs in the foreground, logs to logs/api.log)
cd "$(dirname "$0")"
source config/app.env
exec python3 server.py >> logs/api.log 2>&1
