"""The report shows a cluster scenario's state per node at the end (its `cluster state` event)."""

from __future__ import annotations

from harness.report_html import cluster_table


def test_the_html_has_a_row_per_node_with_its_copy_and_the_meta_leader() -> None:
    rec = {"events": [{"t": 5.0, "source": "runner", "what": "cluster state", "stream": "CHAOS_1", "meta_leader": "n2",
                       "nodes": {"n1": {"messages": 0, "first_seq": 11, "last_seq": 10, "leader": "n3", "ack_floors": {"c": 10}},
                                 "n2": {"messages": 2, "first_seq": 9, "last_seq": 10, "leader": "n3", "ack_floors": {"c": 8}},
                                 "n3": None}}]}
    html = cluster_table(rec)
    assert "stream <code>CHAOS_1</code>" in html
    assert "<tr><td>n1</td><td>0</td><td>11</td><td>10</td><td>n3</td><td>c=10</td></tr>" in html
    assert "<tr><td>n2 (meta leader)</td><td>2</td><td>9</td><td>10</td><td>n3</td><td>c=8</td></tr>" in html
    assert "<tr><td>n3</td><td colspan=5>no copy (or no answer)</td></tr>" in html
    assert cluster_table({"events": [{"what": "fault injected"}]}) == ""  # one server: nothing
