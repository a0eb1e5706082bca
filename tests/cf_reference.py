"""NumPy references of RecBole's LightGCN propagation and SGL's InfoNCE, shared by the CF model
and objective tests (written from the formulas, independent of jaxmethods)."""

import numpy as np


def np_lightgcn(ego_u, ego_i, users, items, n_layers):
    """Dense LightGCN over the (user, item) pairs given, as RecBole builds it (and SGL a view):
    A = [[0, R], [R^T, 0]], Â = D^-1/2 A D^-1/2 (D + 1e-7), E = mean_k Â^k E0."""
    n_users, n_items = len(ego_u), len(ego_i)
    a = np.zeros((n_users + n_items,) * 2)
    a[users, n_users + items] = 1.0
    a = a + a.T
    d = np.power(a.sum(1) + 1e-7, -0.5)
    adj = d[:, None] * a * d[None, :]
    layers = [np.concatenate([ego_u, ego_i]).astype(np.float64)]
    for _ in range(n_layers):
        layers.append(adj @ layers[-1])
    out = np.mean(layers, axis=0)
    return out[:n_users], out[n_users:]


def np_recbole_ssl(sub1, sub2, ids, tau):
    """RecBole `SGL.calc_ssl_loss` for one node type (sum over the batch anchors, before
    `ssl_weight`): the denominator runs over every node of view 2."""

    def normalize(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    e1, e2, all2 = normalize(sub1[ids]), normalize(sub2[ids]), normalize(sub2)
    v1 = np.exp(np.sum(e1 * e2, axis=1) / tau)
    return -np.sum(np.log(v1 / np.sum(np.exp(e1 @ all2.T / tau), axis=1)))
