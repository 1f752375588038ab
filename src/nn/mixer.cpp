#include "nn/mixer.h"

#include "model/config.h"
#include "nn/attention.h"
#include "nn/gdn.h"

namespace lt2 {

std::unique_ptr<Mixer> make_mixer(const ModelConfig& cfg, int layer, const std::string& prefix, DType dt) {
  switch (cfg.layer_types.at(layer).kind) {
    case MixerSpec::Full:
    case MixerSpec::Window:
    case MixerSpec::Dsa: return std::make_unique<AttentionMixer>(cfg, layer, prefix, dt);
    case MixerSpec::Gdn: return std::make_unique<GdnMixer>(cfg, prefix, dt);
  }
  fail("make_mixer: unknown mixer kind");
}

}  // namespace lt2
