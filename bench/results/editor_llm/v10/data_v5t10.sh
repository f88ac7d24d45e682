cd /work/main
export RAY_AUTH_MODE=disabled
for R in emotion_triplets style_triplets speed_triplets denoise_triplets trim_triplets paralinguistic_quadruplets; do
  echo "== $(date -u +%H:%M:%S) $R"
  nice -n 5 .venv/bin/python run.py pipeline=tokenize data=outputs_v5/$R output_dir=outputs_v5t10 pipeline.tokenizer=editor/candidates/tokenizer-v10 ray.progress=false 2>&1 | grep -E "^(==|   |error)|Error" 
done
echo "== $(date -u +%H:%M:%S) done"
