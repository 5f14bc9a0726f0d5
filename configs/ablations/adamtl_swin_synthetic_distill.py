# AdaMTL ablation on synthetic, stage 3 of 3: knowledge distillation from
# the static stage-1 model (teacher in eval mode, no gradients): each task
# adds the distillation of the teacher's outputs (KL at temperature 2 for
# semseg and parts, the teacher's probabilities as soft targets for
# saliency and edge, L1 for normals and depth). Same stage 2, data,
# schedule and evaluation as configs/adamtl_swin_synthetic.py.
#   python tools/train.py configs/ablations/adamtl_swin_synthetic_distill.py
_base_ = ['../adamtl_swin_synthetic.py']
model = dict(
    train_cfg=dict(
        distill=dict(
            teacher_checkpoint='work_dirs/static_swin_synthetic/iter_800.pth',
            temperature=2.0,
            loss_weight=1.0)))
