// A ROS 1 node serving a rill model. A text model: each std_msgs/String on the input topic is fed to one
// persistent stream, and the generated reply is published on the output topic.
//
//   rosrun rill_ros rill_node _model:=/path/demo.rill [_threads:=1] [_input_topic:=input]
//          [_output_topic:=output] [_queue_size:=10] [_tcp_nodelay:=true] [_max_tokens:=64]
//          [_temperature:=0] [_seed:=1] [_mlockall:=false] [_lock_memory:=false]
//          [_input_type:=stamped] [_gap_policy:=hold] [_period:=0] [_max_hold:=100]
//   rosservice call /rill_node/reset      # back to the empty state
//
// A vector (sensor) model instead -- float[d_input] in, float[d_output] out -- makes it a sensor node:
// each rill_msgs/VectorStamped on the input topic is one step of one persistent stream, and the model's
// output goes out as a VectorStamped carrying the input's stamp and frame_id (roscpp numbers seq per
// publisher itself). Gaps -- a skipped header.seq (the publisher's count), or a stamp more than 1.5 periods after the last (_period, seconds) -- are counted
// and handled by _gap_policy: hold (the last input stepped once per missing sample, up to _max_hold;
// longer gaps reset), reset, or ignore. A burst that overflows the subscriber queue shows as such a gap,
// so dropped samples are counted, never silently absorbed. A message of the wrong size, or with NaN or
// Inf, is refused with a (throttled) error and leaves the state as it was. The counts go out once a
// second on /diagnostics (diagnostic_msgs/DiagnosticArray). _input_type:=multiarray takes and gives
// std_msgs/Float32MultiArray instead (no header: no gap detection). The model's pages and the session
// arena are prefaulted at start; _lock_memory:=true locks them in RAM, _mlockall:=true the whole process.
#include <ros/ros.h>
#include <sys/mman.h>

#include <diagnostic_msgs/DiagnosticArray.h>
#include <rill_msgs/VectorStamped.h>
#include <std_msgs/Float32MultiArray.h>
#include <std_msgs/String.h>
#include <std_srvs/Empty.h>

#include <cerrno>
#include <cstring>

#include "rill/extension.hpp"
#include "rill_sensor_stream.h"
#include "rill_text_stream.h"

namespace {

struct SensorParams {
  std::string in_topic, out_topic, input_type;
  int queue = 10;
  bool tcp_nodelay = true;
  rill_ros::SensorStreamOptions opts;
};

diagnostic_msgs::KeyValue kv(const char* k, uint64_t v) {
  diagnostic_msgs::KeyValue x;
  x.key = k;
  x.value = std::to_string(v);
  return x;
}

int run_sensor_node(ros::NodeHandle& nh, ros::NodeHandle& pnh, rill::LoadedModel&& lm, const SensorParams& p) {
  std::string error;
  std::unique_ptr<rill_ros::SensorStream> stream = rill_ros::SensorStream::open(std::move(lm), p.opts, &error);
  if (!stream) {
    ROS_FATAL("%s", error.c_str());
    return 1;
  }
  const rill::ModelInfo& info = stream->info();
  const bool stamped = p.input_type == "stamped";
  ROS_INFO("rill %s: %s sensor model, float[%u] -> float[%u], state %llu bytes, backend %s; %s -> %s (%s, queue %d%s)",
           rill::version_string(), rill::arch_name(info.arch), info.d_input, info.d_output,
           static_cast<unsigned long long>(info.state_bytes), info.backend, nh.resolveName(p.in_topic).c_str(),
           nh.resolveName(p.out_topic).c_str(), stamped ? "rill_msgs/VectorStamped" : "std_msgs/Float32MultiArray",
           p.queue, p.tcp_nodelay ? ", tcpNoDelay" : "");
  const ros::TransportHints hints = p.tcp_nodelay ? ros::TransportHints().tcpNoDelay() : ros::TransportHints();
  ros::Publisher pub;
  ros::Subscriber sub;
  rill_msgs::VectorStamped out_stamped;
  std_msgs::Float32MultiArray out_array;
  out_stamped.data.resize(info.d_output);  // allocated once; the step itself never allocates
  out_array.data.resize(info.d_output);
  out_array.layout.dim.resize(1);
  out_array.layout.dim[0].label = "output";
  out_array.layout.dim[0].size = info.d_output;
  out_array.layout.dim[0].stride = info.d_output;
  auto refused = [&](size_t n, rill::Status s) {
    ROS_ERROR_THROTTLE(1.0, "rill: input of %zu values refused (%s; the model takes %u finite values); state "
                            "unchanged (%llu refused so far)",
                       n, rill::status_str(s), info.d_input,
                       static_cast<unsigned long long>(stream->counters().refused));
  };
  if (stamped) {
    pub = nh.advertise<rill_msgs::VectorStamped>(p.out_topic, static_cast<uint32_t>(p.queue));
    sub = nh.subscribe<rill_msgs::VectorStamped>(
        p.in_topic, static_cast<uint32_t>(p.queue),
        [&](const rill_msgs::VectorStamped::ConstPtr& msg) {
          uint64_t missing = 0;
          const double stamp = msg->header.stamp.isZero() ? -1.0 : msg->header.stamp.toSec();
          // roscpp numbers header.seq per publisher from 0; the stream takes 0 as "no number", so seq + 1.
          const rill::Status s = stream->step(msg->data.data(), msg->data.size(), uint64_t{msg->header.seq} + 1, stamp,
                                              out_stamped.data.data(), out_stamped.data.size(), &missing);
          if (missing)
            ROS_WARN_THROTTLE(1.0, "rill: %llu samples missing before seq %u (%llu in all)",
                              static_cast<unsigned long long>(missing), msg->header.seq,
                              static_cast<unsigned long long>(stream->counters().missing));
          if (s != rill::Status::kOk) return refused(msg->data.size(), s);
          out_stamped.header = msg->header;  // the output belongs to the input's sample (roscpp renumbers seq)
          pub.publish(out_stamped);
        },
        ros::VoidConstPtr(), hints);
  } else {
    pub = nh.advertise<std_msgs::Float32MultiArray>(p.out_topic, static_cast<uint32_t>(p.queue));
    sub = nh.subscribe<std_msgs::Float32MultiArray>(
        p.in_topic, static_cast<uint32_t>(p.queue),
        [&](const std_msgs::Float32MultiArray::ConstPtr& msg) {
          const rill::Status s = stream->step(msg->data.data(), msg->data.size(), 0, -1.0, out_array.data.data(),
                                              out_array.data.size());
          if (s != rill::Status::kOk) return refused(msg->data.size(), s);
          pub.publish(out_array);
        },
        ros::VoidConstPtr(), hints);
  }
  ros::ServiceServer reset = pnh.advertiseService<std_srvs::Empty::Request, std_srvs::Empty::Response>(
      "reset", [&](std_srvs::Empty::Request&, std_srvs::Empty::Response&) {
        stream->reset();
        ROS_INFO("rill: state reset");
        return true;
      });
  // The counts, once a second, as a standard diagnostic.
  ros::Publisher diag = nh.advertise<diagnostic_msgs::DiagnosticArray>("/diagnostics", 10);
  ros::WallTimer timer = nh.createWallTimer(ros::WallDuration(1.0), [&](const ros::WallTimerEvent&) {
    const rill_ros::SensorCounters& c = stream->counters();
    diagnostic_msgs::DiagnosticArray a;
    a.header.stamp = ros::Time::now();
    diagnostic_msgs::DiagnosticStatus st;
    st.name = ros::this_node::getName() + ": rill sensor stream";
    st.hardware_id = "rill";
    st.level = c.missing || c.refused ? diagnostic_msgs::DiagnosticStatus::WARN : diagnostic_msgs::DiagnosticStatus::OK;
    st.message = c.missing || c.refused ? "samples missing or refused" : "ok";
    st.values = {kv("steps", c.steps), kv("refused", c.refused), kv("gaps", c.gaps), kv("missing", c.missing),
                 kv("held", c.held),   kv("resets", c.resets)};
    a.status.push_back(st);
    diag.publish(a);
  });
  ros::spin();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ros::init(argc, argv, "rill_node");
  ros::NodeHandle nh, pnh("~");
  rill_ros::TextStreamOptions o;
  if (!pnh.getParam("model", o.model_path)) {
    ROS_FATAL("parameter ~model (path to a .rill file) is required");
    return 1;
  }
  int threads = 1, queue = 10, max_tokens = 64, seed = 1, max_hold = 100;
  double temperature = 0.0, period = 0.0;
  bool lock_memory = false, lock_all = false, tcp_nodelay = true;
  std::string in_topic, out_topic, input_type, gap_policy;
  pnh.param("threads", threads, 1);
  pnh.param("queue_size", queue, 10);
  pnh.param("tcp_nodelay", tcp_nodelay, true);
  pnh.param("max_tokens", max_tokens, 64);
  pnh.param("temperature", temperature, 0.0);
  pnh.param("seed", seed, 1);
  pnh.param<std::string>("input_topic", in_topic, "input");
  pnh.param<std::string>("output_topic", out_topic, "output");
  pnh.param("lock_memory", lock_memory, false);
  pnh.param("mlockall", lock_all, false);
  pnh.param<std::string>("input_type", input_type, "stamped");
  pnh.param<std::string>("gap_policy", gap_policy, "hold");
  pnh.param("period", period, 0.0);
  pnh.param("max_hold", max_hold, 100);
  rill_ros::GapPolicy policy;
  if (threads < 1 || threads > 256 || queue < 1 || max_tokens < 0 || temperature < 0 || !(period >= 0) ||
      max_hold < 0 || (input_type != "stamped" && input_type != "multiarray") ||
      !rill_ros::parse_gap_policy(gap_policy, &policy)) {
    ROS_FATAL("bad parameters: threads in [1, 256], queue_size >= 1, max_tokens >= 0, temperature >= 0, "
              "period >= 0, max_hold >= 0, input_type stamped or multiarray, gap_policy hold, reset or ignore");
    return 1;
  }
  if (lock_all) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) ROS_INFO("rill: mlockall: every page of the process locked");
    else ROS_WARN("rill: mlockall failed (%s): raise RLIMIT_MEMLOCK or run with CAP_IPC_LOCK", std::strerror(errno));
  }
  // The model is opened once, here: its kind decides the node's kind.
  rill::LoadedModel lm;
  {
    rill::ModelOptions mo;
    mo.prefault = true;
    mo.lock_memory = lock_memory;
    rill::Error e;
    if (rill::LoadedModel::open(o.model_path.c_str(), mo, &lm, &e) != rill::Status::kOk) {
      ROS_FATAL("%s: %s", o.model_path.c_str(), e.message);
      return 1;
    }
  }
  if (lm.model().info().d_input > 0) {
    SensorParams sp;
    sp.in_topic = in_topic;
    sp.out_topic = out_topic;
    sp.input_type = input_type;
    sp.queue = queue;
    sp.tcp_nodelay = tcp_nodelay;
    sp.opts.threads = static_cast<size_t>(threads);
    sp.opts.lock_memory = lock_memory;
    sp.opts.period_s = period;
    sp.opts.gap_policy = policy;
    sp.opts.max_hold = static_cast<uint32_t>(max_hold);
    return run_sensor_node(nh, pnh, std::move(lm), sp);
  }
  o.threads = static_cast<size_t>(threads);
  o.max_tokens = static_cast<uint32_t>(max_tokens);
  o.temperature = static_cast<float>(temperature);
  o.seed = static_cast<uint64_t>(seed);

  std::string error;
  std::unique_ptr<rill_ros::TextStream> stream = rill_ros::TextStream::open(std::move(lm), o, &error);
  if (!stream) {
    ROS_FATAL("%s", error.c_str());
    return 1;
  }
  const rill::ModelInfo& info = stream->info();
  ROS_INFO("rill %s: %s, %u layers, vocab %u, backend %s, %d thread(s); %s -> %s", rill::version_string(),
           rill::arch_name(info.arch), info.n_layer, info.vocab_size, info.backend, threads,
           nh.resolveName(in_topic).c_str(), nh.resolveName(out_topic).c_str());

  ros::Publisher pub = nh.advertise<std_msgs::String>(out_topic, static_cast<uint32_t>(queue));
  ros::Subscriber sub = nh.subscribe<std_msgs::String>(
      in_topic, static_cast<uint32_t>(queue), [&](const std_msgs::String::ConstPtr& msg) {
        std_msgs::String reply;
        std::string err;
        if (!stream->respond(msg->data, &reply.data, &err)) {
          ROS_ERROR_THROTTLE(1.0, "rill: %s", err.c_str());
          return;
        }
        pub.publish(reply);
      });
  ros::ServiceServer reset = pnh.advertiseService<std_srvs::Empty::Request, std_srvs::Empty::Response>(
      "reset", [&](std_srvs::Empty::Request&, std_srvs::Empty::Response&) {
        stream->reset();
        ROS_INFO("rill: state reset");
        return true;
      });
  ros::spin();
  return 0;
}
