"""Several name servers, one view: raw observations, verdicts and push references shared through etcd v3.

layout.py names the keys; vote.py is one instance's value (pure encode/parse); consensus.py decides from the live
votes (pure); shared_reference.py is the push reference moved by compare-and-swap; etcd.py is the bounded client;
member.py runs it all from the health cycle; view.py is what the status page and /metrics show.
"""
