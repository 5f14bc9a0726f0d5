"""The shipped configs build, and their heads match their datasets."""
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import DATASETS, MODELS

from tests.conftest import ROOT

CONFIGS = dict(
    static_swin_pascal=('PascalContextMTDataset', 21),
    static_swin_nyud=('NYUDMTDataset', 40),
    static_swin_synthetic=('SyntheticMTDataset', 6),
    adamtl_swin_pascal_policy=('PascalContextMTDataset', 21),
    adamtl_swin_pascal=('PascalContextMTDataset', 21),
    adamtl_swin_nyud_policy=('NYUDMTDataset', 40),
    adamtl_swin_nyud=('NYUDMTDataset', 40),
    adamtl_swin_synthetic_policy=('SyntheticMTDataset', 6),
    adamtl_swin_synthetic=('SyntheticMTDataset', 6),
    mtlora_swin_pascal=('PascalContextMTDataset', 21),
    mtlora_swin_nyud=('NYUDMTDataset', 40),
    mtlora_swin_synthetic_pretrain=('SyntheticMTDataset', 6),
    mtlora_swin_synthetic=('SyntheticMTDataset', 6),
    mtlora_swin_synthetic_full=('SyntheticMTDataset', 6),
    mtlora_swin_synthetic_decoders=('SyntheticMTDataset', 6),
    controllable_swin_pascal=('PascalContextMTDataset', 21),
    controllable_swin_nyud=('NYUDMTDataset', 40),
    controllable_swin_synthetic=('SyntheticMTDataset', 6),
)


@pytest.mark.parametrize('dataset', ['pascal', 'nyud', 'synthetic'])
def test_adamtl_stages_hand_off(dataset):
    """Each stage loads the last checkpoint of the one before, in the work
    dir tools/train.py gives it by default."""
    def load(name):
        return Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))

    static = load(f'static_swin_{dataset}')
    policy = load(f'adamtl_swin_{dataset}_policy')
    joint = load(f'adamtl_swin_{dataset}')
    assert policy.load_from == (f'work_dirs/static_swin_{dataset}/'
                                f'iter_{static.train_cfg.max_iters}.pth')
    assert joint.load_from == (f'work_dirs/adamtl_swin_{dataset}_policy/'
                               f'iter_{policy.train_cfg.max_iters}.pth')
    # Stage 2 trains only the policy (the rest has requires_grad=False),
    # stage 3 everything.
    assert policy.model.train_cfg.task_losses is False
    for cfg, frozen in ((policy, True), (joint, False)):
        assert cfg.model.backbone.type == 'AdaptiveSwinTransformer'
        assert cfg.model_wrapper_cfg.find_unused_parameters
        keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
        assert all(k.get('lr_mult', 1) > 0 for k in keys.values())
        cfg.model.backbone.init_cfg = None
        model = MODELS.build(cfg.model)
        trains = {n.split('.')[0] + ('.policy' if '.policy.' in n else '')
                  for n, p in model.named_parameters() if p.requires_grad}
        assert trains == ({'backbone.policy'} if frozen else
                          {'backbone', 'backbone.policy', 'decode_head'})
    assert [h.type for h in policy.custom_hooks] == [
        'BudgetScheduleHook', 'ComplexityLoggerHook']
    assert [h.type for h in joint.custom_hooks] == [
        'BudgetScheduleHook', 'ComplexityLoggerHook', 'BudgetCalibrationHook']
    assert joint.model.test_cfg.budget_mode == 'target'


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_builds_and_matches_dataset(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
    dataset_type, num_classes = CONFIGS[name]
    assert cfg.train_dataloader.dataset.type == dataset_type
    dataset_cls = DATASETS.get(dataset_type)
    tasks = cfg.train_dataloader.dataset.tasks
    assert set(tasks) == set(cfg.model.decode_head.tasks)
    assert set(tasks) <= set(dataset_cls.SUPPORTED_TASKS)
    assert len(dataset_cls.METAINFO['classes']) == num_classes
    assert cfg.model.decode_head.tasks.semseg.out_channels == num_classes
    if 'human_parts' in tasks:
        assert cfg.model.decode_head.tasks.human_parts.out_channels == len(
            dataset_cls.METAINFO['part_classes'])
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64), mode='tensor')
    assert set(out) == set(tasks)
    # MTLoRA's taps start after the first patch merging (1/8).
    stride = 8 if cfg.model.backbone.get('out_after_downsample') else 4
    assert out['semseg'].shape == (1, num_classes, 64 // stride,
                                   64 // stride)


def test_missing_pretrained_file_is_named(tmp_path):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'static_swin_nyud.py'))
    missing = str(tmp_path / 'no_such_swin.pth')
    cfg.model.backbone.init_cfg.checkpoint = missing
    model = MODELS.build(cfg.model)
    with pytest.raises(FileNotFoundError, match='no_such_swin.pth'):
        model.init_weights()


def test_default_losses_are_adamtls():
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'static_swin_synthetic.py'))
    losses = MODELS.build(cfg.model).decode_head.losses
    weights = {task: loss.loss_weight for task, loss in losses.items()}
    assert weights == dict(semseg=1., human_parts=2., saliency=5.,
                           normals=10., edge=50., depth=1.)
    assert losses['edge'].pos_weight == 0.95
    assert losses['saliency'].pos_weight is None
    assert losses['semseg'].avg_non_ignore


@pytest.mark.parametrize('dataset', ['synthetic', 'pascal', 'nyud'])
@pytest.mark.parametrize('ablation', ['block_only', 'token_only',
                                      'per_task'])
def test_ablation_configs(dataset, ablation):
    """Each ablation changes only the policy (and what follows from it)
    and hands off from its own policy pre-training."""
    def load(name):
        return Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))

    main = load(f'adamtl_swin_{dataset}')
    name = f'adamtl_swin_{dataset}_{ablation}'
    joint = load(f'ablations/{name}')
    policy = load(f'ablations/{name}_policy')
    assert joint.load_from == (f'work_dirs/{name}_policy/'
                               f'iter_{policy.train_cfg.max_iters}.pth')
    assert joint.train_cfg == main.train_cfg
    assert joint.train_dataloader == main.train_dataloader
    assert joint.param_scheduler == main.param_scheduler
    hooks = [h.type for h in joint.custom_hooks]
    assert ('TaskAlternationHook' in hooks) == (ablation == 'per_task')
    if ablation == 'per_task':
        # The real-data recipes alternate as the official code does (all
        # task losses); the synthetic one is the single-loss ablation.
        assert joint.custom_hooks[-1].get('all_task_losses', False) == (
            dataset != 'synthetic')
    for cfg in (joint, policy):
        cfg.model.backbone.init_cfg = None
        model = MODELS.build(cfg.model)
        pol = model.backbone.policy
        assert pol.block_select == (ablation != 'token_only')
        assert pol.token_select == (ablation != 'block_only')
        assert pol.task_mode == ('per_task' if ablation == 'per_task'
                                 else 'single')
        if ablation == 'per_task':
            assert pol.tasks == model.tasks
    if ablation == 'block_only':
        assert joint.model.train_cfg.budget_loss.token_weight == 0


def test_synthetic_recipe_ablation_configs():
    """Issue 30's AdaMTL options, each one change from its base."""
    def load(name):
        return Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))

    main = load('adamtl_swin_synthetic')
    batch = load('ablations/adamtl_swin_synthetic_batch_budget')
    assert batch.model.train_cfg.budget_loss.reduction == 'batch'
    hook = batch.custom_hooks[0]
    assert hook.type == 'BudgetScheduleHook' and hook.per_batch
    assert dict(hook, per_batch=False) == dict(main.custom_hooks[0],
                                               per_batch=False)
    assert batch.custom_hooks[1:] == main.custom_hooks[1:]
    per_task = load('ablations/adamtl_swin_synthetic_per_task')
    official = load('ablations/adamtl_swin_synthetic_per_task_all_losses')
    assert official.custom_hooks[-1] == dict(per_task.custom_hooks[-1],
                                             all_task_losses=True)
    assert official.load_from == per_task.load_from
    shared = load('ablations/adamtl_swin_synthetic_shared_tokens')
    policy = load('ablations/adamtl_swin_synthetic_shared_tokens_policy')
    assert shared.load_from == (
        f'work_dirs/adamtl_swin_synthetic_shared_tokens_policy/'
        f'iter_{policy.train_cfg.max_iters}.pth')
    for cfg in (shared, policy):
        assert cfg.model.backbone.policy.shared_token_selectors
    distill = load('ablations/adamtl_swin_synthetic_distill')
    policy_stage = load('adamtl_swin_synthetic_policy')
    assert distill.model.train_cfg.distill.teacher_checkpoint == \
        policy_stage.load_from
    assert distill.load_from == main.load_from
    for cfg in (batch, official, shared, distill):
        assert cfg.train_cfg == main.train_cfg
        assert cfg.param_scheduler == main.param_scheduler
    # The long joint stage: the same 1400 iterations as the fair static
    # model, re-split 400 / 100 / 900, the stages handing off.
    s1 = load('ablations/static_swin_synthetic_400it')
    s2 = load('ablations/adamtl_swin_synthetic_long_joint_policy')
    s3 = load('ablations/adamtl_swin_synthetic_long_joint')
    assert sum(c.train_cfg.max_iters for c in (s1, s2, s3)) == \
        load('static_swin_synthetic_1400it').train_cfg.max_iters
    assert s3.train_cfg.max_iters == 900
    assert s2.load_from == ('work_dirs/static_swin_synthetic_400it/'
                            f'iter_{s1.train_cfg.max_iters}.pth')
    assert s3.load_from == ('work_dirs/adamtl_swin_synthetic_long_joint_'
                            f'policy/iter_{s2.train_cfg.max_iters}.pth')
    assert s3.model == main.model and s3.custom_hooks == main.custom_hooks
    assert s3.param_scheduler == main.param_scheduler


def test_controllable_recipe_ablation_configs():
    """Issue 30's controllable options, each one change from the synthetic
    super-network's config; they build."""
    def load(name):
        return Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))

    main = load('controllable_swin_synthetic')
    for name, change in (
            ('predict_distill', dict(predict_distill=dict(
                type='PredictionDistillLoss', loss_weight=1.0,
                temperature=1.0))),
            ('uniform_decoders', dict(decoder_sampling='uniform'))):
        cfg = load(f'ablations/controllable_swin_synthetic_{name}')
        assert cfg.model.train_cfg.sandwich == dict(
            main.model.train_cfg.sandwich, **change)
        for key in ('train_cfg', 'param_scheduler', 'train_dataloader',
                    'test_evaluator'):
            assert cfg[key] == main[key]
        model = MODELS.build(cfg.model)
        sandwich = model.sandwich
        assert {k: sandwich[k] for k in change} == change


@pytest.mark.parametrize('size', ['t', 's', 'b'])
def test_paper_configs(size):
    """The paper's settings: 224x224, taps after patch merging, the count
    loss, cosine to 5e-6 x batch / 512 with AMP; the stages hand off."""
    def load(name):
        return Config.fromfile(osp.join(ROOT, 'configs', 'paper',
                                        f'{name}.py'))

    static = load(f'static_swin_{size}_pascal_224')
    policy = load(f'adamtl_swin_{size}_pascal_224_policy')
    joint = load(f'adamtl_swin_{size}_pascal_224')
    assert policy.load_from == (f'work_dirs/static_swin_{size}_pascal_224/'
                                f'iter_{static.train_cfg.max_iters}.pth')
    assert joint.load_from == (
        f'work_dirs/adamtl_swin_{size}_pascal_224_policy/'
        f'iter_{policy.train_cfg.max_iters}.pth')
    loss = joint.model.train_cfg.budget_loss
    assert (loss.mode, loss.block_target, loss.token_target,
            loss.loss_weight, loss.width_weighted,
            loss.token_count_weighted) == ('count', 0.9, 0.5, 1.0, True,
                                           True)
    dims = {'t': 96, 's': 96, 'b': 128}[size]
    for cfg in (static, policy, joint):
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        if cfg is not policy:  # stage 2: warm-up, then constant
            assert cfg.param_scheduler[-1].eta_min == pytest.approx(
                5e-6 * 32 / 512)
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(
            5e-4 * 32 / 512)
        crop = cfg.train_dataloader.dataset.pipeline[3].crop_size
        assert crop == (224, 224)
        cfg.model.backbone.init_cfg = None
        model = MODELS.build(cfg.model).eval()
        assert model.backbone.tap_dims == [dims * 2, dims * 4, dims * 8,
                                           dims * 8]
        if cfg is not static:  # AdaMTL's one token selector per stage
            assert [len(s) for s in
                    model.backbone.policy.token_selectors] == [1] * 4
        with torch.no_grad():
            out = model(torch.rand(1, 3, 224, 224), mode='tensor')
        # The decoder works at 1/8 of the input.
        assert out['semseg'].shape == (1, 21, 28, 28)
    assert 'BudgetScheduleHook' not in [h.type for h in joint.custom_hooks]


@pytest.mark.parametrize('name', ['controllable_swin_pascal',
                                  'controllable_swin_nyud',
                                  'controllable_swin_synthetic'])
def test_controllable_configs_hold_out_the_lookup_images(name):
    """The lookup table's images are training images left out of
    training, never the test set; the static config's schedule stays."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
    static = Config.fromfile(osp.join(
        ROOT, 'configs', name.replace('controllable', 'static') + '.py'))
    train = cfg.train_dataloader.dataset
    lookup = cfg.lookup_dataloader.dataset
    assert lookup.split == train.split == 'train'
    assert lookup.indices == list(range(train.indices, cfg.num_train))
    assert cfg.train_cfg.max_iters == static.train_cfg.max_iters
    assert cfg.model.type == 'ControllableEncoderDecoder'
    assert cfg.model_wrapper_cfg.type == 'SandwichDDP'
    # The ImageNet-started encoders are re-ordered by importance before
    # slimming; the synthetic one trains from scratch (nothing to order).
    pretrained = cfg.model.backbone.get('init_cfg') is not None
    assert pretrained == (name != 'controllable_swin_synthetic')
    assert cfg.model.backbone.get('reorder_importance', False) == pretrained


SINGLE_TASK = sorted(
    osp.splitext(f)[0]
    for f in os.listdir(osp.join(ROOT, 'configs', 'single_task')))


@pytest.mark.parametrize('name', SINGLE_TASK)
def test_single_task_configs_differ_only_in_the_task(name):
    """Each single-task config runs one task of its multi-task config with
    the same backbone, decoder, loss, data and schedule."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'single_task',
                                   f'{name}.py'))
    with open(cfg.filename, encoding='utf-8') as f:
        base_name = re.search(r"_base_ = \['\.\./(.+?)'\]", f.read())[1]
    base = Config.fromfile(osp.join(ROOT, 'configs', base_name))
    task = next(t for t in base.model.decode_head.tasks
                if name.endswith('_' + t))
    assert list(cfg.model.decode_head.tasks) == [task]
    assert cfg.model.decode_head.tasks[task] == \
        base.model.decode_head.tasks[task]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.tasks == [task]
        assert cfg[loader].dataset.data_root == base[loader].dataset.data_root
    assert cfg.model.backbone == base.model.backbone
    assert cfg.model.decode_head.decoder == base.model.decode_head.decoder
    assert cfg.train_cfg == base.train_cfg
    assert cfg.param_scheduler == base.param_scheduler
    assert cfg.optim_wrapper == base.optim_wrapper
    assert cfg.get('randomness') == base.get('randomness')


@pytest.mark.parametrize('name,depths,embed', [
    ('static_swin_synthetic_1400it_depths1121', [1, 1, 2, 1], 48),
    ('static_swin_synthetic_1400it_embed32', [2, 2, 2, 2], 32)])
def test_static_family_configs(name, depths, embed):
    """tools/pareto.py's static family: the fair baseline's recipe (data,
    schedule, 1400 iterations, seed) with another encoder, whose taps
    feed the decoders."""
    fair = Config.fromfile(osp.join(ROOT, 'configs',
                                    'static_swin_synthetic_1400it.py'))
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'static_family',
                                   f'{name}.py'))
    for key in ('train_cfg', 'param_scheduler', 'optim_wrapper',
                'train_dataloader', 'test_evaluator', 'randomness'):
        assert cfg[key] == fair[key], key
    assert cfg.train_cfg.max_iters == 1400
    assert cfg.model.backbone.depths == depths
    assert cfg.model.backbone.embed_dims == embed
    assert cfg.model.decode_head.decoder == fair.model.decode_head.decoder
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64), mode='tensor')
    assert out['semseg'].shape == (1, 6, 16, 16)
