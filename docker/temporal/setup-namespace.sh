#!/bin/sh
# One-shot (temporalio/admin-tools): once the server answers, make sure the namespace exists and
# register Closeloop's custom search attributes in it. Safe to re-run: an existing namespace is
# left alone and "already exists" from search-attribute create counts as success.
set -eu

ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-720h}"
# name:type pairs
SEARCH_ATTRIBUTES="${CLOSELOOP_SEARCH_ATTRIBUTES:-CustomerId:Keyword BrandId:Keyword CustomerStage:Keyword PlanCode:Keyword DunningState:Keyword}"

echo "waiting for Temporal at $ADDRESS"
attempt=0
until temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "Temporal at $ADDRESS is not healthy after $attempt attempts" >&2
    exit 1
  fi
  sleep 2
done

if temporal operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE: exists"
else
  temporal operator namespace create --address "$ADDRESS" --namespace "$NAMESPACE" --retention "$RETENTION"
  echo "namespace $NAMESPACE: created (retention $RETENTION)"
fi

for pair in $SEARCH_ATTRIBUTES; do
  name="${pair%%:*}"
  type="${pair#*:}"
  if out=$(temporal operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" \
      --name "$name" --type "$type" 2>&1); then
    echo "search attribute $name ($type): created"
  elif printf '%s' "$out" | grep -qi 'already exists'; then
    echo "search attribute $name ($type): exists"
  else
    printf '%s\n' "$out" >&2
    echo "search attribute $name ($type): failed" >&2
    exit 1
  fi
done

temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE"
