#!/bin/bash
set -euo pipefail
cat > /etc/nginx/conf.d/edge.conf <<'CONF'
server {
    listen 8080;
    server_name _;

    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Edge 1;

    location = /healthz {
        default_type text/plain;
        return 200 "ok";
    }
    location /api/ {
        proxy_pass http://api:8000/;
    }
    location /assets/ {
        proxy_pass http://assets:8000;
    }
    location / {
        return 404;
    }
}
CONF
nginx -t
nginx -s quit 2>/dev/null || true
sleep 0.5
nginx
