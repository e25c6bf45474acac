"""Reads a /metrics answer on stdin with the Prometheus Python client's parser
(prometheus_client.parser.text_string_to_metric_families) and prints what it
understood as JSON: {"types": {family: type}, "samples": [[name, labels, value]]}.

The parser names a counter's family without its `_total`; it is put back here,
so that families are named as in the text's TYPE lines."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

types = {}
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    name = family.name + "_total" if family.type == "counter" else family.name
    if name in types:
        sys.exit(f"family {name} appears twice")
    types[name] = family.type
    for sample in family.samples:
        samples.append([sample.name, sample.labels, sample.value])
json.dump({"types": types, "samples": samples}, sys.stdout)
