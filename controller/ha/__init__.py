"""Active/standby: leader election and fencing on etcd (docs/ha.md)."""
