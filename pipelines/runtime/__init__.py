"""What every training and inference stage runs on, whatever its model: devices and `torchrun`
processes (`distributed`), safetensors checkpoints and weights (`checkpoint`), the training loop
(`trainer`) and the routine that trains a stage and publishes its model artifact
(`model_artifact`). It sits above `store` and below every model package (`occworld`, `video`)
and `sensors`, so those import it and it imports none of them."""
