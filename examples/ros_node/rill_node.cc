// A ROS 1 node serving a rill model. A text model: each std_msgs/String on the input topic is fed to one
// persistent stream, and the generated reply is published on the output topic.
//
//   rosrun rill_ros rill_node _model:=/path/demo.rill [_threads:=1] [_input_topic:=input]
//          [_output_topic:=output] [_queue_size:=10] [_max_tokens:=64] [_temperature:=0] [_seed:=1]
//          [_lock_memory:=false]
//   rosservice call /rill_node/reset      # back to the empty state
//
// A vector (sensor) model instead -- float[d_input] in, float[d_output] out -- makes it a sensor node:
// each std_msgs/Float32MultiArray of d_input values on the input topic is one step of one persistent
// stream, and the model's output goes out as a Float32MultiArray of d_output values. A message of the
// wrong size, or with NaN or Inf, is dropped with an error and leaves the state as it was. The model's
// pages and the session arena are prefaulted at start (and locked in RAM with _lock_memory:=true).
#include <ros/ros.h>
#include <std_msgs/Float32MultiArray.h>
#include <std_msgs/String.h>
#include <std_srvs/Empty.h>

#include "rill/extension.hpp"
#include "rill_text_stream.h"

namespace {

int run_sensor_node(ros::NodeHandle& nh, ros::NodeHandle& pnh, const std::string& path, int threads, int queue,
                    const std::string& in_topic, const std::string& out_topic, bool lock_memory) {
  rill::Error e;
  rill::LoadedModel lm;
  rill::ModelOptions mo;
  mo.prefault = true;  // the weights are read in now, not by the first messages
  mo.lock_memory = lock_memory;
  if (rill::LoadedModel::open(path.c_str(), mo, &lm, &e) != rill::Status::kOk) {
    ROS_FATAL("%s: %s", path.c_str(), e.message);
    return 1;
  }
  rill::ThreadPool* pool = nullptr;
  if (threads > 1 && rill::ThreadPool::create(static_cast<size_t>(threads), &pool) != rill::Status::kOk) {
    ROS_FATAL("cannot create %d threads", threads);
    return 1;
  }
  rill::SessionOptions so;
  so.pool = pool;
  so.prefault = true;
  so.lock_memory = lock_memory;
  rill::OwnedSession os;
  if (rill::OwnedSession::create(lm.model(), so, &os, &e) != rill::Status::kOk) {
    ROS_FATAL("session: %s", e.message);
    return 1;
  }
  const rill::ModelInfo info = lm.model().info();
  ROS_INFO("rill %s: %s sensor model, float[%u] -> float[%u], state %llu bytes, backend %s; %s -> %s",
           rill::version_string(), rill::arch_name(info.arch), info.d_input, info.d_output,
           static_cast<unsigned long long>(info.state_bytes), info.backend, nh.resolveName(in_topic).c_str(),
           nh.resolveName(out_topic).c_str());
  ros::Publisher pub = nh.advertise<std_msgs::Float32MultiArray>(out_topic, static_cast<uint32_t>(queue));
  std_msgs::Float32MultiArray out;
  out.layout.dim.resize(1);
  out.layout.dim[0].label = "output";
  out.layout.dim[0].size = info.d_output;
  out.layout.dim[0].stride = info.d_output;
  out.data.resize(info.d_output);  // allocated once; the step itself never allocates
  ros::Subscriber sub = nh.subscribe<std_msgs::Float32MultiArray>(
      in_topic, static_cast<uint32_t>(queue), [&](const std_msgs::Float32MultiArray::ConstPtr& msg) {
        const rill::Status s = os.session().step_vector(msg->data.data(), msg->data.size(), out.data.data(),
                                                        out.data.size());
        if (s != rill::Status::kOk) {
          ROS_ERROR("rill: input of %zu values dropped (%s; the model takes %u finite values); state unchanged",
                    msg->data.size(), rill::status_str(s), info.d_input);
          return;
        }
        pub.publish(out);
      });
  ros::ServiceServer reset = pnh.advertiseService<std_srvs::Empty::Request, std_srvs::Empty::Response>(
      "reset", [&](std_srvs::Empty::Request&, std_srvs::Empty::Response&) {
        os.session().reset();
        ROS_INFO("rill: state reset");
        return true;
      });
  ros::spin();
  rill::ThreadPool::destroy(pool);
  return 0;
}

bool is_vector_model(const std::string& path) {
  rill::LoadedModel lm;
  return rill::LoadedModel::open(path.c_str(), rill::ModelOptions{}, &lm) == rill::Status::kOk &&
         lm.model().info().d_input > 0;
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
  int threads = 1, queue = 10, max_tokens = 64, seed = 1;
  double temperature = 0.0;
  std::string in_topic, out_topic;
  pnh.param("threads", threads, 1);
  pnh.param("queue_size", queue, 10);
  pnh.param("max_tokens", max_tokens, 64);
  pnh.param("temperature", temperature, 0.0);
  pnh.param("seed", seed, 1);
  pnh.param<std::string>("input_topic", in_topic, "input");
  pnh.param<std::string>("output_topic", out_topic, "output");
  bool lock_memory = false;
  pnh.param("lock_memory", lock_memory, false);
  if (threads < 1 || threads > 256 || queue < 1 || max_tokens < 0 || temperature < 0) {
    ROS_FATAL("bad parameters: threads in [1, 256], queue_size >= 1, max_tokens >= 0, temperature >= 0");
    return 1;
  }
  if (is_vector_model(o.model_path))
    return run_sensor_node(nh, pnh, o.model_path, threads, queue, in_topic, out_topic, lock_memory);
  o.threads = static_cast<size_t>(threads);
  o.max_tokens = static_cast<uint32_t>(max_tokens);
  o.temperature = static_cast<float>(temperature);
  o.seed = static_cast<uint64_t>(seed);

  std::string error;
  std::unique_ptr<rill_ros::TextStream> stream = rill_ros::TextStream::open(o, &error);
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
          ROS_ERROR("rill: %s", err.c_str());
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
