{{/* Names, labels and shared fragments of the RazorFS chart. */}}

{{- define "razorfs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "razorfs.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "razorfs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "razorfs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: razorfs
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "node"). */}}
{{- define "razorfs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "razorfs.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "razorfs.componentLabels" -}}
{{ include "razorfs.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "razorfs.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "razorfs.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "razorfs.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "razorfs.nodeServiceAccount" -}}
{{- default (printf "%s-node" (include "razorfs.fullname" .)) .Values.node.serviceAccount.name -}}
{{- end -}}

{{- define "razorfs.controllerServiceAccount" -}}
{{- default (printf "%s-controller" (include "razorfs.fullname" .)) .Values.controller.serviceAccount.name -}}
{{- end -}}

{{- define "razorfs.adminSecretName" -}}
{{- default (printf "%s-node-admin" (include "razorfs.fullname" .)) .Values.nodeAdmin.existingSecret -}}
{{- end -}}

{{/* Where the plugin's CSI socket lives inside the node plugin's kubelet plugin dir. */}}
{{- define "razorfs.pluginDir" -}}
{{- printf "%s/plugins/%s" .Values.kubeletDir .Values.driverName -}}
{{- end -}}

{{- define "razorfs.metricsAnnotations" -}}
{{- if .ctx.Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{- /* What the operator does with namespaced objects; granted cluster-wide or in the release
       namespace only, following operator.clusterWide. */}}
{{- define "razorfs.operatorNamespacedRules" -}}
# kopf watches RazorVolumes and keeps its finalizer and progress annotations on them.
- apiGroups: [razorfs.io]
  resources: [razorvolumes]
  verbs: [get, list, watch, patch]
- apiGroups: [razorfs.io]
  resources: [razorvolumes/status]
  verbs: [patch]
# The claim the operator creates for each RazorVolume (and removes on deletion).
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, create, delete]
# A bound claim's reported capacity follows a grown spec.capacity (no resizer serves static claims).
- apiGroups: [""]
  resources: [persistentvolumeclaims/status]
  verbs: [patch]
# S3 credentials named by a RazorVolume (S3 reachability checks, deleting objects on reclaim).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Which pods use a claim (InUse, deletion guard) and where the node plugins run.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# kopf posts the operator's events.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* What the node plugin's mount pods look like (razorfs.csi.mount_pods.MountPodTemplate). */}}
{{- define "razorfs.mountPodTemplate" -}}
{{- $image := printf "%s:%s" (default .Values.image.repository .Values.mountPod.image.repository) (default (default .Chart.AppVersion .Values.image.tag) .Values.mountPod.image.tag) -}}
{{- $template := dict
  "namespace" .Release.Namespace
  "image" $image
  "imagePullPolicy" .Values.image.pullPolicy
  "hostCacheRoot" .Values.node.cacheDir
  "runAsUser" .Values.mountPod.runAsUser
  "resources" .Values.mountPod.resources
  "priorityClassName" .Values.mountPod.priorityClassName
  "tolerations" .Values.mountPod.tolerations
  "metricsPort" .Values.mountPod.metricsPort
  "env" (dict "RAZORFS_LOG_LEVEL" (upper .Values.logLevel) "RAZORFS_LOG_FORMAT" .Values.logFormat)
  "labels" (merge (dict) .Values.mountPod.labels (include "razorfs.labels" . | fromYaml))
-}}
{{- toPrettyJson $template -}}
{{- end -}}
