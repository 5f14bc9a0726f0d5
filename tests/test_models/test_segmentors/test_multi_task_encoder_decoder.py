import copy

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmadamtl.utils import TASKS

CHANNELS = dict(semseg=6, human_parts=7, saliency=1, normals=3, edge=1,
                depth=1)


def _model(tiny_cfg, **overrides):
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.update(overrides)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def _sample(h, w, seed=0, **meta):
    g = torch.Generator().manual_seed(seed)
    s = SegDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w),
                                    **meta))
    s.gt_sem_seg = PixelData(data=torch.randint(0, 6, (1, h, w),
                                                generator=g))
    s.set_field(PixelData(data=torch.randint(0, 7, (1, h, w),
                                             generator=g)), 'gt_human_parts')
    for task in ('saliency', 'edge'):
        s.set_field(PixelData(data=torch.randint(0, 2, (1, h, w),
                                                 generator=g)),
                    TASKS[task].gt_field)
    n = torch.nn.functional.normalize(torch.randn(3, h, w, generator=g),
                                      dim=0)
    s.set_field(PixelData(data=n), 'gt_normals')
    s.set_field(PixelData(data=torch.rand(1, h, w, generator=g) + 1),
                'gt_depth')
    return s


def test_loss_keys_and_gradients(tiny_cfg):
    model = _model(tiny_cfg).train()
    samples = [_sample(64, 64, i) for i in range(2)]
    data = model.data_preprocessor(
        dict(inputs=[torch.randint(0, 255, (3, 64, 64)).byte()] * 2,
             data_samples=samples), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {
        'semseg.loss_ce', 'human_parts.loss_ce', 'saliency.loss_bce',
        'normals.loss_normals', 'edge.loss_bce', 'depth.loss_depth'}
    total = sum(losses.values())
    total.backward()
    assert model.backbone.patch_embed.projection.weight.grad is not None
    for task in CHANNELS:
        assert model.decode_head.decoders[task].cls.weight.grad is not None


def test_predict_shapes_and_forward(tiny_cfg):
    model = _model(tiny_cfg)
    # Odd sizes: the preprocessor pads, predict crops and resizes back.
    samples = [_sample(50, 61, 0), _sample(64, 40, 1)]
    data = model.data_preprocessor(
        dict(inputs=[torch.rand(3, 50, 61) * 255, torch.rand(3, 64, 40) * 255],
             data_samples=samples), False)
    assert data['inputs'].shape == (2, 3, 64, 64)
    with torch.no_grad():
        out = model.predict(data['inputs'], data['data_samples'])
    for s, (h, w) in zip(out, [(50, 61), (64, 40)]):
        assert s.pred_sem_seg.data.shape == (1, h, w)
        assert s.pred_sem_seg.data.max() < 6
        assert s.pred_normals.data.shape == (3, h, w)
        torch.testing.assert_close(
            s.pred_normals.data.norm(dim=0), torch.ones(h, w))
        sal = s.pred_saliency.data
        assert sal.shape == (1, h, w) and 0 <= sal.min() and sal.max() <= 1
        assert s.pred_depth.data.shape == (1, h, w)
    with torch.no_grad():
        raw = model(data['inputs'], mode='tensor')
    assert {k: v.shape[1] for k, v in raw.items()} == CHANNELS


def test_predict_undoes_flip(tiny_cfg):
    model = _model(tiny_cfg)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        outs = model.encode_decode(x, None)
        flipped = model.postprocess_result(
            {k: v.clone() for k, v in outs.items()},
            [SegDataSample(metainfo=dict(
                ori_shape=(64, 64), img_shape=(64, 64), flip=True,
                flip_direction='horizontal'))])[0]
    raw_n = torch.nn.functional.normalize(outs['normals'][0], dim=0)
    expected = raw_n.flip(-1)
    expected[0] *= -1
    torch.testing.assert_close(flipped.pred_normals.data, expected)
    torch.testing.assert_close(flipped.pred_depth.data,
                               outs['depth'][0].flip(-1))


def test_active_tasks(tiny_cfg):
    model = _model(tiny_cfg, test_cfg=dict(tasks=['semseg', 'normals']))
    calls = []
    for task, dec in model.decode_head.decoders.items():
        dec.register_forward_hook(lambda m, i, o, t=task: calls.append(t))
    with torch.no_grad():
        out = model.predict(torch.rand(1, 3, 64, 64))[0]
    # (The first image of a size also traces the requested decoders once
    # to count their FLOPs.)
    assert sorted(set(calls)) == ['normals', 'semseg']
    assert 'pred_sem_seg' in out and 'pred_depth' not in out
    with pytest.raises(ValueError, match="unknown task 'sal'"):
        model.set_active_tasks(['sal'])


def test_head_config_errors(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg.model.decode_head)
    cfg.tasks = dict(semantic=dict(out_channels=3))
    with pytest.raises(ValueError, match="unknown task 'semantic'"):
        MODELS.build(cfg)
    cfg.tasks = dict(normals=dict(out_channels=1))
    with pytest.raises(ValueError, match='out_channels must be 3'):
        MODELS.build(cfg)


def test_class_count_mismatch_raises(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.decode_head.tasks = dict(semseg=dict(out_channels=3))
    model = MODELS.build(cfg).train()
    s = _sample(64, 64)
    with pytest.raises(ValueError, match="task 'semseg'.*3 classes"):
        model.loss(torch.rand(1, 3, 64, 64), [s])


def test_missing_ground_truth_named(tiny_cfg):
    model = _model(tiny_cfg).train()
    s = SegDataSample(metainfo=dict(img_path='x.jpg'))
    s.gt_sem_seg = PixelData(data=torch.zeros(1, 64, 64, dtype=torch.long))
    with pytest.raises(KeyError, match='gt_human_parts'):
        model.loss(torch.rand(1, 3, 64, 64), [s])


def test_preprocessor_pads_each_task_with_its_ignore_value(tiny_cfg):
    model = _model(tiny_cfg)
    s = _sample(40, 50)
    data = model.data_preprocessor(
        dict(inputs=[torch.zeros(3, 40, 50)], data_samples=[s]), True)
    out = data['data_samples'][0]
    assert data['inputs'].shape == (1, 3, 64, 64)
    assert (out.gt_sem_seg.data[:, 40:] == 255).all()
    assert (out.gt_human_parts.data[:, :, 50:] == 255).all()
    assert (out.gt_edge.data[:, 40:] == 255).all()
    assert (out.gt_normals.data[:, 40:] == 0).all()
    assert (out.gt_depth.data[:, :, 50:] == 0).all()
    assert out.pad_shape == (64, 64)


def test_hr_fusion_decoder_shapes():
    dec = MODELS.build(dict(type='HRFusionDecoder', in_channels=[8, 16, 32,
                                                                 64],
                            out_channels=5))
    feats = [torch.rand(2, c, 16 // 2**i, 16 // 2**i)
             for i, c in enumerate([8, 16, 32, 64])]
    assert dec(feats).shape == (2, 5, 16, 16)
    assert dec.fuse.conv.in_channels == 18 + 36 + 72 + 144
    assert dec.fuse.conv.out_channels == 4 * 270
    with pytest.raises(ValueError, match='fuse_channels'):
        MODELS.build(dict(type='HRFusionDecoder', in_channels=[8, 16],
                          out_channels=1))
