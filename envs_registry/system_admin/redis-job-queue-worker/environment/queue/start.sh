#!/bin/bash
# The job queue: Redis (no persistence), seeded with the day's jobs before it reports healthy.
redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no &
until redis-cli ping >/dev/null 2>&1; do sleep 0.05; done
redis-cli del jobs results dead >/dev/null
while IFS= read -r line; do [ -n "$line" ] && redis-cli rpush jobs "$line" >/dev/null; done < /srv/jobs.txt
redis-cli set seeded 1 >/dev/null
wait
