"""What the HTTP backends (sglang/, vllm/) share: server-sent-event parsing, request
failures and their retry rule, and prefix-affinity routing over several servers."""
