#!/usr/bin/env bash
# Imports clickstream.ndjson into Kibana, overwriting, so every `up` leaves the same objects.
# Kibana answers 200 even when objects fail to import, so the body decides the exit status.
set -euo pipefail

kibana_url="${KIBANA_URL:-http://kibana:5601}"
objects="$(dirname "$0")/clickstream.ndjson"

answer=$(curl -sS -X POST -H "kbn-xsrf: true" --form "file=@${objects}" -w $'\n%{http_code}' \
  "${kibana_url}/api/saved_objects/_import?overwrite=true")
status="${answer##*$'\n'}"
body="${answer%$'\n'*}"
if [[ "$status" == 200 && "$body" =~ \"success\":[[:space:]]*true ]]; then
  echo "imported every object of ${objects} into ${kibana_url}"
else
  echo "error: Kibana at ${kibana_url} did not import every object of ${objects} (HTTP ${status});" \
    "fix what its answer names and run kibana-setup again: ${body}" >&2
  exit 1
fi
