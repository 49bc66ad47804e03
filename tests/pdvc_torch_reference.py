"""A plain-PyTorch PDVC (inference path) with PDVC's module names, for the import parity test.

Written for this project from PDVC's documented behaviour (docs/reference.md section 4 and
the PDVC paper), not copied: the module tree only mirrors PDVC's attribute names so that
`state_dict()` has PDVC's keys (`base_encoder.input_proj.{l}.{0,1}`, `transformer.encoder.
layers.{i}.self_attn.*`, `caption_head.{i}.core.rnn.weight_ih_l0`, ...). Deformable sampling
uses `F.grid_sample` (bilinear, align_corners=False) on a 1-row image per level, the
definition PDVC's kernel implements; the JAX model uses explicit gathers instead.

Behaviour kept from PDVC's evaluation path on purpose (the parity test checks how the JAX
model relates to it): the output box of decoder layer 0 adds the 1-D reference logit to
*both* box coordinates (`tmp[..., :2] += reference`), while the reference passed on to
layer 1 only shifts the centre. Only imported by tests that run where torch is installed.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


def inverse_sigmoid(x, eps=1e-5):
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def clones(module, n):
    return nn.ModuleList([copy.deepcopy(module) for _ in range(n)])


def sample_levels(value, shapes, loc, padding):
    """value [B, S, H, Dh]; loc [B, Q, H, L, P] in [0, 1] -> [B, Q, H, L, P, Dh]."""
    b, _, h, dh = value.shape
    _, q, _, _, p = loc.shape
    out, start = [], 0
    for lv, t in enumerate(shapes):
        v = value[:, start:start + t].permute(0, 2, 3, 1).reshape(b * h, dh, 1, t)
        start += t
        x = loc[:, :, :, lv].permute(0, 2, 1, 3).reshape(b * h, q, p) * 2 - 1
        grid = torch.stack([x, torch.zeros_like(x)], -1)  # [B*H, Q, P, 2]
        s = F.grid_sample(v, grid, mode="bilinear", padding_mode=padding, align_corners=False)
        out.append(s.reshape(b, h, dh, q, p).permute(0, 3, 1, 4, 2))  # [B, Q, H, P, Dh]
    return torch.stack(out, 3)


def locations(ref, offsets, shapes, points):
    if ref.shape[-1] == 1:
        norm = torch.tensor(shapes, dtype=offsets.dtype)[None, None, None, :, None]
        return ref[:, :, None, :, None, 0] + offsets / norm
    return ref[:, :, None, :, None, 0] + offsets / points * ref[:, :, None, :, None, 1] * 0.5


class MSDeformAttn(nn.Module):
    def __init__(self, d, levels, heads, points, query_dim=None):
        super().__init__()
        q = query_dim or d
        self.h, self.lv, self.p, self.d = heads, levels, points, d
        self.sampling_offsets = nn.Linear(q, heads * levels * points)
        self.attention_weights = nn.Linear(q, heads * levels * points)
        self.value_proj = nn.Linear(d, d)
        self.output_proj = nn.Linear(d, d)

    def values(self, memory, padding):
        v = self.value_proj(memory).masked_fill(padding[..., None], 0.0)
        return v.view(*v.shape[:2], self.h, self.d // self.h)

    def forward(self, query, ref, memory, shapes, padding):
        b, q, _ = query.shape
        off = self.sampling_offsets(query).view(b, q, self.h, self.lv, self.p)
        w = self.attention_weights(query).view(b, q, self.h, self.lv * self.p).softmax(-1)
        loc = locations(ref, off, shapes, self.p)
        s = sample_levels(self.values(memory, padding), shapes, loc, "zeros")
        out = (s * w.view(b, q, self.h, self.lv, self.p, 1)).sum((3, 4))
        return self.output_proj(out.reshape(b, q, self.d))


class PosEmbed(nn.Module):
    def __init__(self, feats):
        super().__init__()
        self.feats = feats
        self.duration_embed_layer = nn.Linear(feats, feats)

    def forward(self, valid, duration):
        x = valid.float().cumsum(1)
        x = (x - 0.5) / (x[:, -1:] + 1e-6) * 2 * math.pi
        dim_t = 10000 ** (2 * (torch.arange(self.feats) // 2) / self.feats)
        ph = x[:, :, None] / dim_t
        pos = torch.stack([ph[..., 0::2].sin(), ph[..., 1::2].cos()], -1).flatten(2)
        ones = (torch.arange(self.feats)[None] < duration.int()[:, None].clamp(0, self.feats))
        dur = self.duration_embed_layer(ones.float())[:, None].expand_as(pos)
        return torch.cat([pos, dur], -1)


class BaseEncoder(nn.Module):
    def __init__(self, in_dim, d, levels):
        super().__init__()
        self.pos_embed = PosEmbed(d // 2)
        projs, c = [nn.Sequential(nn.Conv1d(in_dim, d, 1), nn.GroupNorm(32, d))], in_dim
        for _ in range(levels - 1):
            projs.append(nn.Sequential(nn.Conv1d(c, d, 3, 2, 1), nn.GroupNorm(32, d)))
            c = d
        self.input_proj = nn.ModuleList(projs)

    def forward(self, feats, valid, duration):
        srcs, valids, poses = [], [], []
        x = feats.transpose(1, 2)
        for lv, proj in enumerate(self.input_proj):
            src = proj(x if lv <= 1 else srcs[-1])
            m = valid if lv == 0 else F.interpolate(
                valid[None].float(), size=src.shape[-1]).bool()[0]
            srcs.append(src)
            valids.append(m)
            poses.append(self.pos_embed(m, duration))
        return [s.transpose(1, 2) for s in srcs], valids, poses


class EncoderLayer(nn.Module):
    def __init__(self, d, ffn, levels, heads, points):
        super().__init__()
        self.self_attn = MSDeformAttn(d, levels, heads, points)
        self.norm1 = nn.LayerNorm(d)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.norm2 = nn.LayerNorm(d)

    def forward(self, src, pos, ref, shapes, padding):
        src = self.norm1(src + self.self_attn(src + pos, ref, src, shapes, padding))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    def __init__(self, d, ffn, levels, heads, points):
        super().__init__()
        self.cross_attn = MSDeformAttn(d, levels, heads, points)
        self.norm1 = nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, heads)
        self.norm2 = nn.LayerNorm(d)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.norm3 = nn.LayerNorm(d)

    def forward(self, tgt, query_pos, ref, memory, shapes, padding, query_valid):
        q = (tgt + query_pos).transpose(0, 1)
        sa = self.self_attn(q, q, tgt.transpose(0, 1), key_padding_mask=~query_valid)[0]
        tgt = self.norm2(tgt + sa.transpose(0, 1))
        tgt = self.norm1(tgt + self.cross_attn(tgt + query_pos, ref, memory, shapes, padding))
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class Stack(nn.Module):
    def __init__(self, layer, n):
        super().__init__()
        self.layers = clones(layer, n)
        self.bbox_head = None


class Transformer(nn.Module):
    def __init__(self, d, ffn, levels, heads, enc_points, dec_points, enc_layers, dec_layers):
        super().__init__()
        self.encoder = Stack(EncoderLayer(d, ffn, levels, heads, enc_points), enc_layers)
        self.decoder = Stack(DecoderLayer(d, ffn, levels, heads, dec_points), dec_layers)
        self.level_embed = nn.Parameter(torch.randn(levels, d))
        self.pos_trans = nn.Linear(512, 2 * d)  # proposal sine features: 2 x 256
        self.pos_trans_norm = nn.LayerNorm(2 * d)
        self.reference_points = nn.Linear(d, 1)


class MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, 2)])

    def forward(self, x):
        return self.layers[2](F.relu(self.layers[1](F.relu(self.layers[0](x)))))


class Core(nn.Module):
    def __init__(self, d, word, rnn, att_hid, levels, heads, points):
        super().__init__()
        self.rnn = nn.LSTM(word + 2 * d, rnn, 1, bias=False)
        self.deformable_att = MSDeformAttn(d, levels, heads, points, query_dim=2 * d)
        self.ctx2att = nn.Linear(d // heads, att_hid)
        self.h2att = nn.Linear(rnn, att_hid)
        self.alpha_net = nn.Linear(att_hid, 1)
        self.h, self.lv, self.p = heads, levels, points


class Captioner(nn.Module):
    def __init__(self, vocab, d, word, rnn, att_hid, levels, heads, points):
        super().__init__()
        self.embed = nn.Embedding(vocab + 1, word)
        self.logit = nn.Linear(rnn, vocab + 1)
        self.core = Core(d, word, rnn, att_hid, levels, heads, points)

    def greedy(self, events, refs, values, shapes, max_len):
        """events [B, Q, D], refs [B, Q, L, 2] -> token ids [B, Q, max_len] (0 after EOS)."""
        b, q, _ = events.shape
        core = self.core
        h = c = torch.zeros(1, b * q, core.rnn.hidden_size)
        it = torch.zeros(b, q, dtype=torch.long)
        out = []
        alive = torch.ones(b, q, dtype=torch.bool)
        for _ in range(max_len):
            hq = h[0].view(b, q, -1)
            off = core.deformable_att.sampling_offsets(torch.cat([hq, events], -1))
            loc = locations(refs, off.view(b, q, core.h, core.lv, core.p), shapes, core.p)
            s = sample_levels(values, shapes, loc, "border").flatten(3, 4)  # [B,Q,H,K,Dh]
            score = core.alpha_net(torch.tanh(core.ctx2att(s) + core.h2att(hq)[:, :, None, None]))
            att = (score.softmax(3) * s).sum(3).flatten(2)
            x = torch.cat([self.embed(it), att, events], -1).view(1, b * q, -1)
            o, (h, c) = core.rnn(x, (h, c))
            logp = F.log_softmax(self.logit(o[0]), -1).view(b, q, -1)
            it = logp.argmax(-1)
            out.append(it)
            alive = alive & (it > 0)
            if not bool(alive.any()):  # PDVC's sampler: stop once every caption has ended
                break
        seq = torch.stack(out, -1)
        seq = F.pad(seq, (0, max_len - seq.shape[-1]))
        return seq * torch.cumprod((seq > 0).long(), -1)  # 0 after the first EOS


class PDVC(nn.Module):
    def __init__(self, o, feature_dim, vocab):
        super().__init__()
        d = o["hidden_dim"]
        self.base_encoder = BaseEncoder(feature_dim, d, o["num_feature_levels"])
        self.transformer = Transformer(
            d, o["transformer_ff_dim"], o["num_feature_levels"], o["nheads"], o["enc_n_points"],
            o["dec_n_points"], o["enc_layers"], o["dec_layers"])
        self.query_embed = nn.Embedding(o["num_queries"], 2 * d)
        n = o["dec_layers"]
        self.refine = bool(o["with_box_refine"])
        if self.refine:
            self.class_head = clones(nn.Linear(d, 1), n)
            self.count_head = clones(nn.Linear(d, o["max_eseq_length"] + 1), n)
            self.bbox_head = clones(MLP(d), n)
            self.transformer.decoder.bbox_head = self.bbox_head  # refinement hook (alias)
        else:  # one head shared by every layer, references never move
            self.class_head = nn.ModuleList([nn.Linear(d, 1)] * n)
            self.count_head = nn.ModuleList([nn.Linear(d, o["max_eseq_length"] + 1)] * n)
            self.bbox_head = nn.ModuleList([MLP(d)] * n)
        head = Captioner(vocab, d, o["input_encoding_size"], o["rnn_size"], o["att_hid_size"],
                         o["cap_num_feature_levels"], o["cap_nheads"], o["cap_dec_n_points"])
        self.caption_head = (nn.ModuleList([head] * n) if o["share_caption_head"]
                             else clones(head, n))
        self.levels = o["num_feature_levels"]

    @torch.no_grad()
    def forward(self, feats, valid, duration, proposals=None, proposal_valid=None, max_len=6):
        srcs, valids, poses = self.base_encoder(feats, valid, duration)
        tr = self.transformer
        shapes = [s.shape[1] for s in srcs]
        memory = torch.cat(srcs, 1)
        padding = ~torch.cat(valids, 1)
        pos = torch.cat([p + tr.level_embed[i] for i, p in enumerate(poses)], 1)
        ratios = torch.stack([v.float().mean(1) for v in valids], 1)  # [B, L]
        centres = torch.cat([(torch.arange(t) + 0.5)[None] / (ratios[:, i, None] * t)
                             for i, t in enumerate(shapes)], 1)
        enc_ref = (centres[:, :, None] * ratios[:, None])[..., None]
        for layer in tr.encoder.layers:
            memory = layer(memory, pos, enc_ref, shapes, padding)
        b = feats.shape[0]
        if proposals is None:
            qp, tgt = self.query_embed.weight.chunk(2, -1)
            qp, tgt = qp[None].expand(b, -1, -1), tgt[None].expand(b, -1, -1)
            ref = tr.reference_points(qp).sigmoid()
            qvalid = torch.ones(qp.shape[:2], dtype=torch.bool)
        else:
            p = inverse_sigmoid(proposals).sigmoid() * 2 * math.pi
            dim_t = 10000 ** (2 * (torch.arange(256) // 2) / 256)
            ph = p[..., None] / dim_t
            emb = torch.stack([ph[..., 0::2].sin(), ph[..., 1::2].cos()], -1).flatten(2)
            qp, tgt = tr.pos_trans_norm(tr.pos_trans(emb)).chunk(2, -1)
            ref, qvalid = proposals, proposal_valid
        hs, logits, counts, boxes, refs_in = [], [], [], [], []
        for lid, layer in enumerate(tr.decoder.layers):
            refs_in.append(ref)
            scaled = ref[:, :, None] * ratios[:, None, :, None]
            tgt = layer(tgt, qp, scaled, memory, shapes, padding, qvalid)
            hs.append(tgt)
            logits.append(self.class_head[lid](tgt)[..., 0])
            counts.append(self.count_head[lid](tgt.max(1)[0]))
            delta = self.bbox_head[lid](tgt)
            if proposals is None:
                # Evaluation output box: PDVC adds the (1-d on layer 0, or on every layer
                # without refinement) reference logit to both coordinates.
                boxes.append((delta + inverse_sigmoid(ref)).sigmoid())
            if proposals is None and self.refine:
                # The refinement hook (what the next layer reads) shifts the centre only.
                nxt = delta.clone()
                nxt[..., :1] = delta[..., :1] + inverse_sigmoid(ref)[..., :1]
                if ref.shape[-1] == 2:
                    nxt = delta + inverse_sigmoid(ref)
                ref = nxt.sigmoid()
            elif proposals is not None:
                boxes.append(ref)  # given proposals are the boxes
        head = self.caption_head[-1]
        values = head.core.deformable_att.values(memory, padding)
        lv = head.core.lv
        cap_refs = (refs_in[-1][:, :, None] * ratios[:, None, :, None])[:, :, :lv]
        tokens = head.greedy(hs[-1], cap_refs, values[:, :sum(shapes[:lv])], shapes[:lv],
                             max_len)
        return {"memory": memory, "hs": torch.stack(hs), "logits": torch.stack(logits),
                "counts": torch.stack(counts), "boxes": torch.stack(boxes), "tokens": tokens}
