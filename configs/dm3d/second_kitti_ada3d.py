# Ada3D step 3 of 3 on mmdet3d's SECOND KITTI config: detector and predictor fine-tuned
# jointly with the dropping in place (75 % of the non-empty BEV columns kept after 3D stages
# 2 and 4, 50 % of the BEV pixels entering the 2D backbone), on the detector's fine-tune base
# schedule. Set load_from to your step-2 checkpoint (second_kitti_ada3d_stage2.py). The
# Ada3D model DM3D prunes jointly (tools/prune.py --spatial), and the one
# tools/bench.py detector_speed --settings second-kitti times with random weights.
_base_ = ['./second_kitti_ada3d_stage2.py']
model = dict(train_predictor_only=False)
