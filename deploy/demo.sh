#!/usr/bin/env bash
# `make demo`: a lab (plane + 3 members), federator in it, and one federated Deployment
# spread 2:1:1 over the members. federator keeps running; `make demo-down` stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
fed=.venv/bin/federator
$fed lab up
eval "$($fed lab env)"
lab_dir=$(dirname "$KUBECONFIG")
$fed init --dns-zone-name example.com | tail -n 1
for member in member-1 member-2 member-3; do
  $fed join "$member" 2>/dev/null || echo "cluster/$member: already joined"
done
if ! { [ -f "$lab_dir/serve.pid" ] && kill -0 "$(cat "$lab_dir/serve.pid")" 2>/dev/null; }; then
  FEDERATOR_DNS__EMBEDDED__PORT=17353 \
  $fed serve --plane-context plane --http-port 17399 --gateway-port 17398 \
    --log-format console >"$lab_dir/serve.log" 2>&1 &
  echo $! >"$lab_dir/serve.pid"
  echo "federator serve started (pid $(cat "$lab_dir/serve.pid"), log $lab_dir/serve.log)"
fi
kubectl --context plane wait --for=jsonpath='{.status.conditions[0].status}'=True \
  clusters --all --timeout=60s >/dev/null
# From here on, context `federation` (and federation-member-N) go through the gateway.
$fed kubeconfig --server https://127.0.0.1:17398
kubectl --context federation get clusters
kubectl --context federation apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: default
  annotations:
    federation.kubernetes.io/deployment-preferences: >-
      {"rebalance": true, "clusters": {"member-1": {"weight": 2}, "*": {"weight": 1}}}
spec:
  replicas: 4
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers: [{name: hello, image: registry.k8s.io/pause:3.10}]
YAML
kubectl --context federation apply -f - <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: hello, namespace: default}
spec: {type: NodePort, selector: {app: hello}, ports: [{port: 80}]}
YAML
kubectl --context federation rollout status deployment/hello --timeout=180s
kubectl --context federation get deployment hello
echo "== pods of hello in every member, through the gateway"
kubectl --context federation get pods -l app=hello -o wide
echo "== DNS: hello's names, from federator's embedded server (127.0.0.1:17353)"
"$(dirname "$fed")/python" - <<'PY'
import time
import dns.message, dns.query
for name in ("hello.default.federation.svc.example.com",
             "hello.default.federation.svc.us-east-1.example.com",
             "hello.default.federation.svc.us-east-1a.us-east-1.example.com"):
    for _ in range(50):  # the records follow the pods' readiness: a moment after rollout
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=17353,
                              timeout=2)
        if reply.answer:
            break
        time.sleep(0.2)
    print(name, " ".join(sorted(r.to_text() for rrset in reply.answer for r in rrset)))
PY
echo
echo "Use it:  eval \"\$($fed lab env)\"; kubectl --context federation get deploy,clusters,pods"
echo "Stop it: make demo-down"
