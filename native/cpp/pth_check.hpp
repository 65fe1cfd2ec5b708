// A plain-dict .pth checked before and after torch::pickle_load reads it (the Python side is
// embodied_lib/export/weights.py: check_pth_archive, spec.check_state_dict).
//
// Before: torch's own zip reader (PyTorchStreamReader, over the verified bytes in memory) lists the records;
// each must unpack to no more than the file holds (torch.save stores records uncompressed, so a record that
// unpacks past the file's size is a decompression bomb, refused before anything is decompressed), and the
// pickle's opcodes are walked without building anything to find how deep its stack gets (torch's unpickler
// recursed through a list nested 200,000 deep and died of a stack overflow).
// After: every tensor is the dtype and shape the manifest's architecture lists ("weights"), dense (no stride-0
// or overlapping views) and alone in a storage of exactly its bytes; nothing is converted (a relabelled float
// tensor read as int32 and converted back ran silently wrong).
#pragma once

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runner_common.hpp"

namespace pth {

constexpr size_t kMaxPickleDepth = 100;  // a state_dict's stack holds a handful of items (weights.MAX_PICKLE_DEPTH)
constexpr size_t kMaxRecords = 10000;

class MemoryReader : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit MemoryReader(const std::vector<char>& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* = "") const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<uint64_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::vector<char>& bytes_;
};

// What the opcode walk learns: how deep the stack got, and each storage the pickle declares (its persistent id
// ('storage', torch.<Type>Storage, key, location, numel)) so its record's size can be checked against it.
struct PickleScan {
  size_t depth = 0;
  std::map<std::string, std::pair<std::string, int64_t>> storages;  // key -> (storage type, element count)
};

// The unpickler's stack, walked from the opcodes alone: nothing is built but small descriptions of strings,
// integers, globals and short tuples (enough to read a storage's persistent id). The stack effect of each opcode
// is the pickle protocol's; an opcode outside it, an argument past the end or a stack past kMaxPickleDepth is an
// error naming the file.
inline PickleScan scan_pickle(const std::string& p, const std::string& path) {
  struct V { char kind = 'o'; std::string s; int64_t i = 0; std::vector<V> items; };  // o(ther) s i g(lobal) t(uple)
  size_t pos = 0;
  std::vector<V> stack;
  std::vector<size_t> marks;
  std::map<uint64_t, V> memo;
  PickleScan scan;
  auto fail = [&](const std::string& why) {
    return std::runtime_error(path + ": its data.pkl is not a valid pickle (" + why + " at byte " + std::to_string(pos) + ")");
  };
  auto need = [&](size_t n) { if (n > p.size() - pos) throw fail("truncated argument"); };
  auto uint = [&](size_t bytes) { need(bytes); uint64_t v = 0; std::memcpy(&v, p.data() + pos, bytes); pos += bytes; return v; };
  auto text = [&](size_t n) { need(n); std::string t = p.substr(pos, n); pos += n; return t; };
  auto line = [&]() { const size_t e = p.find('\n', pos); if (e == std::string::npos) throw fail("unterminated line");
                      std::string t = p.substr(pos, e - pos); pos = e + 1; return t; };
  auto push = [&](V v) { if (v.s.size() > 256) v = V{}; stack.push_back(std::move(v)); };
  auto str = [&](std::string t) { V v; v.kind = 's'; v.s = std::move(t); return v; };
  auto num = [&](int64_t x) { V v; v.kind = 'i'; v.i = x; return v; };
  auto pop = [&](size_t n) { if (n > stack.size()) throw fail("stack underflow"); std::vector<V> out(stack.end() - n, stack.end());
                             stack.resize(stack.size() - n); return out; };
  auto pop_mark = [&]() { if (marks.empty() || marks.back() > stack.size()) throw fail("no mark");
                          std::vector<V> out(stack.begin() + marks.back(), stack.end()); stack.resize(marks.back());
                          marks.pop_back(); return out; };
  auto tuple = [&](std::vector<V> items) { V v; if (items.size() <= 8) { v.kind = 't'; v.items = std::move(items); } return v; };
  auto other = [&](size_t popped) { pop(popped); push(V{}); };
  // _rebuild_tensor_v2(storage, offset, size, stride, ...): a tensor at offset 0 with C-order strides, or an error
  // (a stride-0 or overlapping view, or one that starts inside its storage)
  auto check_rebuild = [&](const V& args) {
    auto ints = [](const V& t) {
      std::vector<int64_t> out;
      if (t.kind != 't') return std::vector<int64_t>{-1};
      for (const V& x : t.items) out.push_back(x.kind == 'i' ? x.i : -1);
      return out;
    };
    if (args.kind != 't' || args.items.size() < 4 || args.items[1].kind != 'i')
      throw fail("a tensor rebuilt from arguments that are not (storage, offset, size, stride)");
    const std::vector<int64_t> size = ints(args.items[2]), stride = ints(args.items[3]);
    std::vector<int64_t> dense(size.size(), 1);
    for (size_t d = size.size(); d-- > 1;) dense[d - 1] = dense[d] * std::max<int64_t>(size[d], 1);
    int64_t numel = 1;
    for (const int64_t n : size) numel *= std::max<int64_t>(n, 0);
    if (args.items[1].i != 0 || size.size() != stride.size() || (numel > 1 && stride != dense))
      throw std::runtime_error(path + ": a tensor is a view (offset " + std::to_string(args.items[1].i) + ", strides " +
                               runner::shape_str(stride) + " for size " + runner::shape_str(size) +
                               "): only dense tensors are weights (a stride-0 or overlapping view is refused)");
  };
  while (pos < p.size()) {
    const unsigned char op = static_cast<unsigned char>(p[pos++]);
    switch (op) {
      case '.': return scan;                                                     // STOP
      case '(': marks.push_back(stack.size()); break;                            // MARK
      case 0x80: uint(1); break;                                                 // PROTO
      case 0x95: uint(8); break;                                                 // FRAME
      case 'q': case 'r': { const uint64_t k = uint(op == 'q' ? 1 : 4);          // BINPUT, LONG_BINPUT
        if (stack.empty()) throw fail("put on an empty stack"); memo[k] = stack.back(); break; }
      case 0x94: if (stack.empty()) throw fail("memoize on an empty stack"); { const uint64_t k = memo.size(); memo[k] = stack.back(); } break;
      case 'h': case 'j': { const uint64_t k = uint(op == 'h' ? 1 : 4);          // BINGET, LONG_BINGET
        const auto it = memo.find(k); if (it == memo.end()) throw fail("get of an unknown memo"); push(it->second); break; }
      case 'p': line(); if (stack.empty()) throw fail("put on an empty stack"); break;   // PUT (text memo: not tracked)
      case 'g': line(); push(V{}); break;                                        // GET
      case 'K': push(num(int64_t(uint(1)))); break;                              // BININT1
      case 'M': push(num(int64_t(uint(2)))); break;                              // BININT2
      case 'J': push(num(int64_t(int32_t(uint(4))))); break;                     // BININT
      case 'G': uint(8); push(V{}); break;                                       // BINFLOAT
      case 0x8a: { const size_t n = uint(1); need(n); int64_t v = 0;            // LONG1 (small ones are counts)
        if (n <= 8 && n > 0) { std::memcpy(&v, p.data() + pos, n); if (n < 8 && (p[pos + n - 1] & 0x80)) v -= int64_t(1) << (8 * n); }
        pos += n; push(n <= 8 ? num(v) : V{}); break; }
      case 0x8b: { const uint64_t n = uint(4); need(n); pos += n; push(V{}); break; }   // LONG4
      case 'X': push(str(text(uint(4)))); break;                                 // BINUNICODE
      case 0x8c: push(str(text(uint(1)))); break;                                // SHORT_BINUNICODE
      case 'U': case 'C': text(uint(1)); push(V{}); break;                       // SHORT_BINSTRING / BYTES
      case 'T': case 'B': text(uint(4)); push(V{}); break;                       // BINSTRING / BINBYTES
      case 0x8d: case 0x8e: case 0x96: text(uint(8)); push(V{}); break;          // 8-byte-length strings / bytes
      case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': line(); push(V{}); break;  // text forms
      case 'c': { V v; v.kind = 'g'; v.s = line(); v.s += "." + line(); push(v); break; }   // GLOBAL
      case 0x93: { auto two = pop(2); V v; v.kind = 'g'; v.s = two[0].s + "." + two[1].s; push(v); break; }  // STACK_GLOBAL
      case 'N': case 0x88: case 0x89: case ']': case '}': case 0x8f: case 0x97: push(V{}); break;
      case ')': push(tuple({})); break;                                          // EMPTY_TUPLE
      case 0x82: uint(1); push(V{}); break;                                      // EXT1
      case 0x83: uint(2); push(V{}); break;                                      // EXT2
      case 0x84: uint(4); push(V{}); break;                                      // EXT4
      case 0x85: push(tuple(pop(1))); break;                                     // TUPLE1
      case 0x86: push(tuple(pop(2))); break;                                     // TUPLE2
      case 0x87: push(tuple(pop(3))); break;                                     // TUPLE3
      case 't': push(tuple(pop_mark())); break;                                  // TUPLE
      case 0x98: other(1); break;                                                // READONLY_BUFFER
      case '0': pop(1); break;                                                   // POP
      case '2': if (stack.empty()) throw fail("stack underflow"); push(stack.back()); break;   // DUP
      case 'Q': {                                                                // BINPERSID: a storage's id
        const V id = pop(1)[0];
        if (id.kind == 't' && id.items.size() == 5 && id.items[0].kind == 's' && id.items[0].s == "storage" &&
            id.items[1].kind == 'g' && id.items[2].kind == 's' && id.items[4].kind == 'i') {
          if (scan.storages.count(id.items[2].s)) throw fail("storage " + id.items[2].s + " declared twice");
          scan.storages[id.items[2].s] = {id.items[1].s, id.items[4].i};
        } else {
          throw fail("a persistent id that is not a tensor storage");
        }
        push(V{});
        break;
      }
      case 'R': {                                                                // REDUCE: a tensor is rebuilt here
        const auto call = pop(2);
        if (call[0].kind == 'g' && call[0].s == "torch._utils._rebuild_tensor_v2") check_rebuild(call[1]);
        push(V{});
        break;
      }
      case 'b': case 'a': case 0x81: other(2); break;                            // BUILD, APPEND, NEWOBJ
      case 's': case 0x92: other(3); break;                                      // SETITEM, NEWOBJ_EX
      case '1': pop_mark(); break;                                               // POP_MARK
      case 'e': case 'u': case 0x90: pop_mark(); break;                          // APPENDS, SETITEMS, ADDITEMS
      case 'l': case 'd': case 0x91: case 'o': pop_mark(); push(V{}); break;     // LIST, DICT, FROZENSET, OBJ
      case 'i': line(); line(); pop_mark(); push(V{}); break;                    // INST
      default: throw fail("unknown opcode " + std::to_string(op));
    }
    scan.depth = std::max(scan.depth, stack.size() + marks.size());
    if (scan.depth > kMaxPickleDepth)
      throw std::runtime_error(path + ": its pickle nests deeper than the " + std::to_string(kMaxPickleDepth) +
                               " of a plain state_dict (refused before unpickling)");
  }
  throw fail("no STOP");
}

inline int64_t storage_item_size(const std::string& type) {
  static const std::map<std::string, int64_t> sizes = {
      {"torch.FloatStorage", 4}, {"torch.LongStorage", 8}, {"torch.IntStorage", 4}, {"torch.DoubleStorage", 8},
      {"torch.HalfStorage", 2}, {"torch.BFloat16Storage", 2}, {"torch.ShortStorage", 2}, {"torch.ByteStorage", 1},
      {"torch.CharStorage", 1}, {"torch.BoolStorage", 1}};
  const auto it = sizes.find(type);
  return it == sizes.end() ? -1 : it->second;
}

// The archive torch.save writes, before torch::pickle_load reads it.
inline void check_archive(const std::vector<char>& bytes, const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::vector<std::string> records;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(std::make_shared<MemoryReader>(bytes));
    records = reader->getAllRecords();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw std::runtime_error(path + " is not a torch.save archive: " + what.substr(0, what.find('\n')));
  }
  if (records.size() > kMaxRecords) throw std::runtime_error(path + " has more records than a state_dict");
  for (const std::string& name : records) {
    size_t size = 0;
    try {
      size = reader->getRecordSize(name);
    } catch (const std::exception&) {
      throw std::runtime_error(path + ": record " + name + " has an unreadable header");
    }
    if (size > bytes.size())
      throw std::runtime_error(path + ": record " + name + " unpacks to " + std::to_string(size) + " bytes, more than the " +
                               std::to_string(bytes.size()) + "-byte file holds (torch.save stores records as they are; "
                               "a decompression bomb?)");
  }
  if (std::find(records.begin(), records.end(), "data.pkl") == records.end())
    throw std::runtime_error(path + " has no data.pkl record: not a torch.save state_dict");
  at::DataPtr data;
  size_t size = 0;
  try {
    std::tie(data, size) = reader->getRecord("data.pkl");
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw std::runtime_error(path + ": cannot read its data.pkl: " + what.substr(0, what.find('\n')));
  }
  const PickleScan scan = scan_pickle(std::string(static_cast<const char*>(data.get()), size), path);
  for (const auto& [key, storage] : scan.storages) {   // each record holds exactly the storage the pickle declares
    const int64_t item = storage_item_size(storage.first);
    if (item < 0) throw std::runtime_error(path + ": storage " + key + " is a " + storage.first + ", not a tensor storage");
    const std::string record = "data/" + key;
    if (std::find(records.begin(), records.end(), record) == records.end())
      throw std::runtime_error(path + " has no record " + record + " for a storage its pickle declares");
    const uint64_t want = uint64_t(storage.second) * uint64_t(item);
    if (storage.second < 0 || reader->getRecordSize(record) != want)
      throw std::runtime_error(path + ": record " + record + " holds " + std::to_string(reader->getRecordSize(record)) +
                               " bytes, its storage declares " + std::to_string(storage.second) + " elements of " +
                               std::to_string(item) + " bytes");
  }
}

// A tensor exactly as the manifest's architecture lists it ("weights": name -> dtype, shape), or an error.
inline void check_tensor(const std::string& path, const std::string& key, const torch::Tensor& t, const runner::json& spec) {
  const std::string dtype = spec.value("dtype", "");
  const auto want = dtype == "float32" ? torch::kFloat32 : dtype == "int64" ? torch::kInt64 : torch::kBFloat16;
  if (dtype != "float32" && dtype != "int64")
    throw std::runtime_error("the manifest lists " + key + " as " + dtype + "; the twin takes float32 weights");
  if (t.scalar_type() != want)
    throw std::runtime_error(path + ": " + key + " is " + std::string(c10::toString(t.scalar_type())) + ", the architecture "
                             "says " + dtype + " (a relabelled tensor is not loaded)");
  const std::vector<int64_t> shape = spec.at("shape").get<std::vector<int64_t>>();
  if (t.sizes().vec() != shape)
    throw std::runtime_error(path + ": " + key + " has shape " + runner::shape_str(t.sizes().vec()) + ", the architecture says " +
                             runner::shape_str(shape));
  if (!t.is_contiguous())
    throw std::runtime_error(path + ": " + key + " is not a dense tensor (stride-0 or overlapping view)");
  const size_t nbytes = size_t(t.numel()) * t.element_size();
  if (t.storage_offset() != 0 || t.storage().nbytes() != nbytes)
    throw std::runtime_error(path + ": " + key + " sits in a storage of " + std::to_string(t.storage().nbytes()) +
                             " bytes at offset " + std::to_string(t.storage_offset()) + " for " + std::to_string(nbytes) +
                             " bytes of elements");
}

}  // namespace pth
