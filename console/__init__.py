"""The cluster domain: cluster, nodes, databases, certificates, users, audit log, provisioning."""
