// Peer program for scripts/bench-vs-adios2.sh: writes or reads a stream of "events" with the
// ADIOS2 C++ API and its BP5 file engine, serially (no MPI), and reports throughput.
//
//   adios2-bench write|read DIR EVENTS_PER_STEP EVENT_BYTES STEPS
//
// Layout of one step (one ADIOS2 step = one batch of EVENTS_PER_STEP events):
//   "data": uint8, global shape {EVENTS_PER_STEP * EVENT_BYTES}, the events' payloads back to back;
//   "meta": char,  global shape {EVENTS_PER_STEP * 64}, a 64-byte metadata string per event
//           (like the 64-byte JSON metadata our producer benchmark writes with -m 64).
// Both are defined once with constant dimensions and written with the default Put mode
// (Deferred: the buffers stay unchanged, so BP5 may use them in place until EndStep).
//
// write: fills the buffers once with a non-zero pattern, then times Open, STEPS x
//        (BeginStep, Put data, Put meta, EndStep) and Close.
// read:  times Open, BeginStep/Get(Mode::Sync)/EndStep over every step into buffers it reuses,
//        checks a few bytes of each step and the step count, and Close.
// Both print one line `Throughput: X events/s (Y MB/s)`: X = total events / seconds,
// Y = total payload bytes ("data" only) / 10^6 / seconds.
// The engine runs with ADIOS2's defaults (e.g. per-block min/max statistics on, StatsLevel=1)
// unless the environment variable ADIOS2_BENCH_PARAMS holds engine parameters in ADIOS2's
// "Key=Value, Key=Value" form (e.g. "StatsLevel=0"), applied to both writer and reader.
#include <adios2.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kMetaBytes = 64;

unsigned char pattern(std::size_t i) { return static_cast<unsigned char>((i * 31 + 7) % 251 + 1); }

// The metadata of event `e`: a JSON string of exactly 64 bytes, quotes included.
void fill_meta(char *dst, std::size_t e) {
  char tmp[kMetaBytes + 1];
  std::snprintf(tmp, sizeof tmp, "\"event %zu", e);
  std::size_t n = std::strlen(tmp);
  std::memset(tmp + n, 'x', kMetaBytes - 1 - n);
  tmp[kMetaBytes - 1] = '"';
  std::memcpy(dst, tmp, kMetaBytes);
}

std::size_t parse(const char *s, const char *what) {
  char *end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0' || v == 0) {
    std::fprintf(stderr, "adios2-bench: %s must be a positive integer, got '%s'\n", what, s);
    std::exit(2);
  }
  return static_cast<std::size_t>(v);
}

void configure(adios2::IO &io) {
  io.SetEngine("BP5");
  if (const char *params = std::getenv("ADIOS2_BENCH_PARAMS"); params != nullptr && *params)
    io.SetParameters(params);
}

void report(std::size_t events, std::size_t bytes, double seconds) {
  std::printf("Throughput: %.1f events/s (%.1f MB/s)\n", static_cast<double>(events) / seconds,
              static_cast<double>(bytes) / 1e6 / seconds);
  std::fprintf(stderr, "adios2-bench: %zu events, %zu bytes in %.6f s\n", events, bytes, seconds);
}

int run_write(const std::string &dir, std::size_t per_step, std::size_t event_bytes,
              std::size_t steps) {
  const std::size_t data_len = per_step * event_bytes;
  const std::size_t meta_len = per_step * kMetaBytes;
  std::vector<unsigned char> data(data_len);
  std::vector<char> meta(meta_len);
  for (std::size_t i = 0; i < data_len; ++i) data[i] = pattern(i);
  for (std::size_t e = 0; e < per_step; ++e) fill_meta(meta.data() + e * kMetaBytes, e);

  adios2::ADIOS adios;
  adios2::IO io = adios.DeclareIO("bench-writer");
  configure(io);
  auto vdata = io.DefineVariable<uint8_t>("data", {data_len}, {0}, {data_len}, true);
  auto vmeta = io.DefineVariable<char>("meta", {meta_len}, {0}, {meta_len}, true);

  const auto t0 = std::chrono::steady_clock::now();
  adios2::Engine w = io.Open(dir, adios2::Mode::Write);
  for (std::size_t s = 0; s < steps; ++s) {
    w.BeginStep();
    w.Put(vdata, data.data());
    w.Put(vmeta, meta.data());
    w.EndStep();
  }
  w.Close();
  const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  report(per_step * steps, data_len * steps, dt.count());
  return 0;
}

int run_read(const std::string &dir, std::size_t per_step, std::size_t event_bytes,
             std::size_t steps) {
  const std::size_t data_len = per_step * event_bytes;
  const std::size_t meta_len = per_step * kMetaBytes;
  std::vector<unsigned char> data(data_len);
  std::vector<char> meta(meta_len);
  char want_meta[kMetaBytes];
  fill_meta(want_meta, per_step - 1);
  const std::size_t probes[] = {0, data_len / 2, data_len - 1};

  adios2::ADIOS adios;
  adios2::IO io = adios.DeclareIO("bench-reader");
  configure(io);

  const auto t0 = std::chrono::steady_clock::now();
  adios2::Engine r = io.Open(dir, adios2::Mode::Read);
  std::size_t seen = 0;
  while (r.BeginStep() == adios2::StepStatus::OK) {
    auto vdata = io.InquireVariable<uint8_t>("data");
    auto vmeta = io.InquireVariable<char>("meta");
    if (!vdata || !vmeta || vdata.Shape().at(0) != data_len || vmeta.Shape().at(0) != meta_len) {
      std::fprintf(stderr, "adios2-bench: step %zu: missing or mis-sized variables\n", seen);
      return 1;
    }
    std::memset(data.data(), 0, 1);  // so a Get that writes nothing cannot pass the check
    r.Get(vdata, data.data(), adios2::Mode::Sync);
    r.Get(vmeta, meta.data(), adios2::Mode::Sync);
    r.EndStep();
    for (std::size_t p : probes) {
      if (data[p] != pattern(p)) {
        std::fprintf(stderr, "adios2-bench: step %zu: byte %zu is %u, expected %u\n", seen, p,
                     data[p], pattern(p));
        return 1;
      }
    }
    if (std::memcmp(meta.data() + meta_len - kMetaBytes, want_meta, kMetaBytes) != 0) {
      std::fprintf(stderr, "adios2-bench: step %zu: unexpected metadata\n", seen);
      return 1;
    }
    ++seen;
  }
  r.Close();
  const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  if (seen != steps) {
    std::fprintf(stderr, "adios2-bench: read %zu steps, expected %zu\n", seen, steps);
    return 1;
  }
  report(per_step * steps, data_len * steps, dt.count());
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 6 || (std::strcmp(argv[1], "write") != 0 && std::strcmp(argv[1], "read") != 0)) {
    std::fprintf(stderr, "usage: adios2-bench write|read DIR EVENTS_PER_STEP EVENT_BYTES STEPS\n");
    return 2;
  }
  const std::string dir = argv[2];
  const std::size_t per_step = parse(argv[3], "EVENTS_PER_STEP");
  const std::size_t event_bytes = parse(argv[4], "EVENT_BYTES");
  const std::size_t steps = parse(argv[5], "STEPS");
  try {
    return std::strcmp(argv[1], "write") == 0 ? run_write(dir, per_step, event_bytes, steps)
                                              : run_read(dir, per_step, event_bytes, steps);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "adios2-bench: %s\n", e.what());
    return 1;
  }
}
