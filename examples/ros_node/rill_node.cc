// A ROS 1 node serving a rill text model: each std_msgs/String on the input topic is fed to one
// persistent stream, and the generated reply is published on the output topic.
//
//   rosrun rill_ros rill_node _model:=/path/demo.rill [_threads:=1] [_input_topic:=input]
//          [_output_topic:=output] [_queue_size:=10] [_max_tokens:=64] [_temperature:=0] [_seed:=1]
//   rosservice call /rill_node/reset      # back to the empty state
//
// Float32MultiArray input (sensor models) comes with float-vector models in the runtime.
#include <ros/ros.h>
#include <std_msgs/String.h>
#include <std_srvs/Empty.h>

#include "rill_text_stream.h"

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
  if (threads < 1 || threads > 256 || queue < 1 || max_tokens < 0 || temperature < 0) {
    ROS_FATAL("bad parameters: threads in [1, 256], queue_size >= 1, max_tokens >= 0, temperature >= 0");
    return 1;
  }
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
