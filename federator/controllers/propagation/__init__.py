"""Propagation: every federated object in the plane (of every kind the plane serves, bar the
cluster-local ones: `domain.kinds`) is made to exist, as its member copy, in each Ready member
it is placed in; workloads spread their replicas; the members' copies are watched so that
drift is undone and status flows back; deletion goes through a finalizer so that member
copies are removed (or released) first.

`controller` (the queue, what feeds it, reconcile), `plane` (the federated kinds and the
plane's objects), `members` (the copies in each member), `writing` (a copy written, removed,
released), `deletion` (finalizer and sweeping), `overflow` (room learned from unschedulable
pods), `reporting` (events, the cluster-status annotation, summed status) and `memory` (one
record per object of what all of them remember)."""
