import torch

from llm4sbr_core.data.batches import SessionBatch
from llm4sbr_core.models.blocks import (
    PositionEmbedding,
    build_session_graph,
    gather_clicks,
    scatter_mean,
)


def test_session_graph_hand_worked():
    # session 0: 5 → 3 → 5 → 7 (a repeat); session 1: 3 → 2, padded
    items = torch.tensor([[5, 3, 5, 7], [3, 2, 0, 0]])
    g = build_session_graph(items)
    # nodes per session, items ascending: s0 {3, 5, 7} → 0, 1, 2; s1 {2, 3} → 3, 4
    assert g.node_items.tolist() == [3, 5, 7, 2, 3]
    assert g.node_session.tolist() == [0, 0, 0, 1, 1]
    assert g.alias.tolist() == [[1, 0, 1, 2], [4, 3, -1, -1]]
    edges = sorted(map(tuple, g.edges.T.tolist()))
    assert edges == [(0, 1), (1, 0), (1, 2), (4, 3)]  # 5→3, 3→5, 5→7 ; 3→2


def test_session_graph_repeated_edge_counted_once():
    g = build_session_graph(torch.tensor([[1, 2, 1, 2]]))
    assert sorted(map(tuple, g.edges.T.tolist())) == [(0, 1), (1, 0)]


def test_scatter_mean_and_gather():
    v = torch.tensor([[1.0], [3.0], [10.0]])
    assert scatter_mean(v, torch.tensor([0, 0, 2]), 3).squeeze(1).tolist() == [2.0, 0.0, 10.0]
    alias = torch.tensor([[2, -1]])
    assert gather_clicks(v, alias).squeeze(-1).tolist() == [[10.0, 0.0]]


def test_reverse_positions_put_the_last_click_at_zero():
    pe = PositionEmbedding(10, 2, reverse=True)
    out = pe(torch.tensor([3, 1]), 3)
    assert torch.equal(out[0, 2], pe.embedding.weight[0]) and torch.equal(out[1, 0], out[0, 2])


def test_batch_helpers():
    b = SessionBatch(torch.tensor([[4, 5, 0], [7, 0, 0]]), torch.tensor([2, 1]),
                     torch.tensor([1, 2]), torch.tensor([0, 1]))
    assert b.last_items.tolist() == [5, 7]
    assert b.mask.tolist() == [[True, True, False], [True, False, False]]
